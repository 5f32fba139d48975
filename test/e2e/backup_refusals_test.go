package e2e

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/oc-recover/oc-recover/pkg/debugnode"
	"github.com/oc-recover/oc-recover/test/box"
	"github.com/oc-recover/oc-recover/test/internal/boxtest"
)

// assertNothingLooksComplete fails if dir holds a backup file, a *.part or
// backup.json.
func assertNothingLooksComplete(t *testing.T, dir string) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		t.Errorf("%s left in %s after a failed backup", e.Name(), dir)
	}
}

// replaceHostTool puts a script in place of a host tool on node for the
// test's duration.
func replaceHostTool(t *testing.T, b *box.Box, node, name, script string) {
	t.Helper()
	path := filepath.Join(b.Node(node).Sandbox.Root, "usr/local/bin", name)
	orig, origErr := os.ReadFile(path)
	if err := os.WriteFile(path+".new", []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if origErr != nil {
			_ = os.Remove(path)
			return
		}
		_ = os.WriteFile(path+".new", orig, 0o755)
		_ = os.Rename(path+".new", path)
	})
}

func TestBackupRefusesAUserWithoutClusterAdmin(t *testing.T) {
	kubeconfig := filepath.Join(t.TempDir(), "developer")
	if err := shared.WriteKubeconfig(kubeconfig, box.DeveloperToken); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "out")
	r := tools.Run(t, shared, "", "kubectl-recover", "--kubeconfig", kubeconfig, "backup", "--output-dir", dir)
	if r.Code != 1 || !strings.Contains(r.Stderr, "cluster-admin") {
		t.Errorf("backup without cluster-admin: %s", r)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("output directory created although the backup was refused")
	}
}

func TestBackupRefusesNodesThatAreNotControlPlane(t *testing.T) {
	for _, node := range []string{"worker-0", "no-such-node"} {
		dir := filepath.Join(t.TempDir(), "out")
		r := tools.Run(t, shared, "", "kubectl-recover", "backup", "--node", node, "--output-dir", dir)
		if r.Code != 2 || !strings.Contains(r.Stderr, node+" is not a control-plane node") || !strings.Contains(r.Stderr, "master-0, master-1, master-2") {
			t.Errorf("backup --node %s: %s", node, r)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("--node %s: output directory created", node)
		}
	}
	assertNoLeftovers(t, context.Background())
}

func TestBackupRefusesAnUnusableOutputDirectory(t *testing.T) {
	notEmpty := t.TempDir()
	if err := os.WriteFile(filepath.Join(notEmpty, "precious"), []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	readOnly := filepath.Join(t.TempDir(), "ro")
	if err := os.Mkdir(readOnly, 0o500); err != nil {
		t.Fatal(err)
	}
	// root ignores directory permissions; a read-only bind says no to root too.
	if err := exec.Command("mount", "--bind", "-o", "ro", readOnly, readOnly).Run(); err != nil {
		t.Fatalf("read-only bind: %v", err)
	}
	defer exec.Command("umount", readOnly).Run()
	for dir, want := range map[string]string{
		notEmpty:                       "is not empty",
		readOnly:                       "not writable",
		filepath.Join(readOnly, "sub"): "cannot create output directory",
	} {
		r := tools.Run(t, shared, "", "kubectl-recover", "backup", "--output-dir", dir)
		if r.Code != 2 || !strings.Contains(r.Stderr, want) {
			t.Errorf("backup --output-dir %s: want exit 2 and %q: %s", dir, want, r)
		}
	}
	if data, err := os.ReadFile(filepath.Join(notEmpty, "precious")); err != nil || string(data) != "keep me" {
		t.Errorf("existing file in the output directory touched: %q %v", data, err)
	}
	assertNoLeftovers(t, context.Background())
}

func TestBackupRefusesWithin24HoursOfInstallationUnlessForced(t *testing.T) {
	t.Parallel()
	b := boxtest.StartBox(t, box.Options{InstalledAgo: 3 * time.Hour})
	dir := filepath.Join(t.TempDir(), "out")
	r := tools.Run(t, b, "", "kubectl-recover", "backup", "--output-dir", dir)
	if r.Code != 1 || !strings.Contains(r.Stderr, "installed 3h0m0s ago") || !strings.Contains(r.Stderr, "--force") {
		t.Errorf("backup 3h after installation: %s", r)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("output directory created although the backup was refused")
	}
	r = tools.Run(t, b, "", "kubectl-recover", "backup", "--output-dir", dir, "--force")
	if r.Code != 0 || !strings.Contains(r.Stdout, "WARNING: --force") {
		t.Fatalf("backup --force: %s", r)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "backup.json"))
	if !strings.Contains(string(data), "within 24h of installation") {
		t.Errorf("backup.json does not record the override: %s", data)
	}
}

// With the cluster-wide proxy on, the host script runs with the proxy
// variables exported (OpenShift 4.5 documentation, Backup and restore, 1.1
// "Backing up etcd data").
func TestBackupExportsTheClusterProxy(t *testing.T) {
	t.Parallel()
	b := boxtest.StartBox(t, box.Options{})
	ctx := context.Background()
	proxy, err := b.Config.ConfigV1().Proxies().Get(ctx, "cluster", metav1GetOptions)
	if err != nil {
		t.Fatal(err)
	}
	proxy.Status.HTTPProxy, proxy.Status.HTTPSProxy, proxy.Status.NoProxy = "http://proxy.corp:3128", "http://proxy.corp:3129", ".cluster.local,10.0.0.0/16"
	if _, err := b.Config.ConfigV1().Proxies().UpdateStatus(ctx, proxy, metav1UpdateOptions); err != nil {
		t.Fatal(err)
	}
	replaceHostTool(t, b, "master-0", "cluster-backup.sh", "#!/bin/bash\necho \"proxy seen: $HTTP_PROXY $HTTPS_PROXY $NO_PROXY\" >&2\nexit 9\n")
	r := tools.Run(t, b, "", "kubectl-recover", "backup", "--output-dir", filepath.Join(t.TempDir(), "out"))
	if r.Code != 1 || !strings.Contains(r.Stderr, "proxy seen: http://proxy.corp:3128 http://proxy.corp:3129 .cluster.local,10.0.0.0/16") {
		t.Errorf("proxy not exported to the host script: %s", r)
	}
}

// A failing host script, or one that writes no files, fails the backup with
// its output shown, and leaves nothing behind.
func TestBackupReportsAFailingHostScript(t *testing.T) {
	for name, script := range map[string]string{
		"fails":           "#!/bin/bash\necho 'Could not find etcd pod' >&2\nexit 3\n",
		"prints-no-files": "#!/bin/bash\necho 'all good, honest'\nexit 0\n",
	} {
		t.Run(name, func(t *testing.T) {
			replaceHostTool(t, shared, "master-2", "cluster-backup.sh", script)
			dir := filepath.Join(t.TempDir(), "out")
			r := tools.Run(t, shared, "", "kubectl-recover", "backup", "--node", "master-2", "--output-dir", dir)
			wantOutput := map[string]string{"fails": "Could not find etcd pod", "prints-no-files": "all good, honest"}[name]
			if r.Code != 1 || !strings.Contains(r.Stderr, "backup script on master-2") || !strings.Contains(r.Stderr, "| "+wantOutput) {
				t.Errorf("backup with a host script that %s: %s", name, r)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				assertNothingLooksComplete(t, dir)
			}
			assertNoLeftovers(t, context.Background())
		})
	}
}

// A full disk on the way: the download fails, no file that looks complete
// stays, the debug namespace goes.
func TestBackupOnAFullDiskLeavesNothingComplete(t *testing.T) {
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount a small tmpfs: %v %s", err, out)
	}
	defer exec.Command("umount", mnt).Run()
	dir := filepath.Join(mnt, "out")
	r := tools.Run(t, shared, "", "kubectl-recover", "backup", "--output-dir", dir)
	if r.Code != 1 || !strings.Contains(r.Stderr, "no space left on device") {
		t.Errorf("backup onto a full disk: %s", r)
	}
	if _, err := os.Stat(dir); err == nil {
		assertNothingLooksComplete(t, dir)
	}
	assertNoLeftovers(t, context.Background())
}

// slowTool throttles a host tool (tar for the backup script, zstd for the
// download) to block bytes every 50 ms, so a backup lasts long enough to
// be interrupted in the middle.
func slowTool(name string, block int) string {
	return `#!/bin/bash
/usr/bin/` + name + ` "$@" | while :; do
  n=$(dd bs=` + strconv.Itoa(block) + ` count=1 iflag=fullblock 2>&1 >&3 | awk '/bytes/ {print $1}')
  [ "${n:-0}" = 0 ] && break
  sleep 0.05
done 3>&1
`
}

// slowBackups makes backups from node slow for the test's duration.
func slowBackups(t *testing.T, node string) {
	replaceHostTool(t, shared, node, "tar", slowTool("tar", 16384))
	// zstd's output is the compressed file, a few times smaller.
	replaceHostTool(t, shared, node, "zstd", slowTool("zstd", 4096))
}

// startBackup runs a backup in the background and returns it with a
// reader of its progress output.
func startBackup(t *testing.T, b *box.Box, args ...string) (*exec.Cmd, *bufio.Reader, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(filepath.Join(tools.BinDir, "kubectl-recover"), append([]string{"backup"}, args...)...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+b.Kubeconfig)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, bufio.NewReader(stderr), &stdout
}

// waitForLine reads progress output until a line contains want, and
// returns everything read.
func waitForLine(t *testing.T, r *bufio.Reader, want string) string {
	t.Helper()
	var seen strings.Builder
	for {
		line, err := r.ReadString('\n')
		seen.WriteString(line)
		if strings.Contains(line, want) {
			return seen.String()
		}
		if err != nil {
			t.Fatalf("no %q in the output:\n%s", want, seen.String())
		}
	}
}

func exitCodeOf(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// The debug pod deleted in the middle of the download: the backup fails,
// removes its *.part files, and a re-run succeeds.
func TestBackupSurvivesItsDebugPodBeingDeletedMidDownload(t *testing.T) {
	slowBackups(t, "master-1")
	dir := filepath.Join(t.TempDir(), "out")
	cmd, progress, _ := startBackup(t, shared, "--node", "master-1", "--output-dir", dir)
	waitForLine(t, progress, "Downloading snapshot_")
	if _, err := os.Stat(dir); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	left, err := debugnode.Leftovers(ctx, shared.Kube)
	if err != nil || len(left) != 1 {
		t.Fatalf("want one debug namespace during the backup, got %d (%v)", len(left), err)
	}
	if r := tools.Run(t, shared, "", "kubectl", "delete", "pods", "--all", "-n", left[0].Name, "--grace-period=0", "--force"); r.Code != 0 {
		t.Fatalf("delete the debug pod: %s", r)
	}
	rest, _ := readAll(progress)
	if code := exitCodeOf(cmd.Wait()); code != 1 {
		t.Errorf("backup whose debug pod was deleted exited %d, want 1:\n%s", code, rest)
	}
	assertNothingLooksComplete(t, dir)
	assertNoLeftovers(t, ctx)
	assertNoHostCopies(t, shared, "master-1")

	// Without the fault, the same command succeeds into the same directory.
	for _, tool := range []string{"tar", "zstd"} {
		replaceHostTool(t, shared, "master-1", tool, "#!/bin/bash\nexec /usr/bin/"+tool+" \"$@\"\n")
	}
	if r := tools.Run(t, shared, "", "kubectl-recover", "backup", "--node", "master-1", "--output-dir", dir); r.Code != 0 {
		t.Fatalf("re-run after the fault: %s", r)
	}
}

// Ctrl-C in the middle of a download: no namespace or pod is left in the
// cluster, no file that looks complete on disk.
func TestBackupInterruptedLeavesNothingBehind(t *testing.T) {
	slowBackups(t, "master-1")
	for _, when := range []string{"Started debug pod", "Running the backup script", "Downloading snapshot_"} {
		t.Run(when, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "out")
			cmd, progress, _ := startBackup(t, shared, "--node", "master-1", "--output-dir", dir)
			waitForLine(t, progress, when)
			if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
			rest, _ := readAll(progress)
			if code := exitCodeOf(cmd.Wait()); code != 1 {
				t.Errorf("interrupted backup exited %d, want 1:\n%s", code, rest)
			}
			if !strings.Contains(rest, "interrupted") {
				t.Errorf("the interruption is not explained:\n%s", rest)
			}
			if _, err := os.Stat(dir); err == nil {
				assertNothingLooksComplete(t, dir)
			}
			assertNoLeftovers(t, context.Background())
			assertNoHostCopies(t, shared, "master-1")
		})
	}
}

func readAll(r *bufio.Reader) (string, error) {
	var b bytes.Buffer
	_, err := b.ReadFrom(r)
	return b.String(), err
}
