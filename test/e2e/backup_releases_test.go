package e2e

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	configv1 "github.com/openshift/api/config/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/oc-recover/oc-recover/pkg/backup"
	"github.com/oc-recover/oc-recover/test/box"
	"github.com/oc-recover/oc-recover/test/internal/boxtest"
)

// archiveEntries lists the entries of a tar.gz archive.
func archiveEntries(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	tr := tar.NewReader(zr)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, hdr.Name)
	}
}

// staticPodRevisions reads which revision dir of each static pod a static
// resources archive holds (pod -> /etc/kubernetes/static-pod-resources/<pod>-pod-<n>).
func staticPodRevisions(t *testing.T, path string) map[string]string {
	t.Helper()
	dir := regexp.MustCompile(`^static-pod-resources/(([a-z-]+)-pod-\d+)/`)
	out := map[string]string{}
	for _, name := range archiveEntries(t, path) {
		if m := dir.FindStringSubmatch(name); m != nil {
			out[m[2]] = "/etc/kubernetes/static-pod-resources/" + m[1]
		}
	}
	return out
}

// waitProgressing waits until ClusterOperator name reports Progressing=want.
func waitProgressing(t *testing.T, b *box.Box, name string, want configv1.ConditionStatus) {
	t.Helper()
	err := box.WaitFor(context.Background(), time.Minute, "clusteroperator "+name+" Progressing="+string(want), func(ctx context.Context) (bool, string, error) {
		co, err := b.Config.ConfigV1().ClusterOperators().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		for _, c := range co.Status.Conditions {
			if c.Type == configv1.OperatorProgressing {
				return c.Status == want, string(c.Status) + ": " + c.Message, nil
			}
		}
		return false, "no Progressing condition", nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func fileNames(m *backup.Manifest) []string {
	var names []string
	for _, f := range m.Files {
		names = append(names, f.Name)
	}
	sort.Strings(names)
	return names
}

// On hosts of each modelled release, with every static pod's
// highest-numbered, newest and manifest-referenced revision dirs three
// different ones, a backup holds the dir that release's script takes (4.5:
// the newest; 4.6 and later: the manifest's). During a kube-apiserver
// rollout the backup is refused, naming the operator, with nothing
// created; with --force it is taken, marked dirty (by the script's file
// names where it takes --force), verified and listed as such.
func TestBackupOnEachReleaseAndDuringARollout(t *testing.T) {
	for _, tc := range []struct {
		version     string
		takesForce  bool
		takesNewest bool
	}{
		{"4.5.41", false, true},
		{"4.8.57", true, false},
		{"4.14.8", true, false},
		{"4.18.10", true, false},
	} {
		t.Run(tc.version, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			b := boxtest.StartBox(t, box.Options{Version: tc.version})
			dirs, err := b.ScrambleRevisionDirs("master-1")
			if err != nil {
				t.Fatal(err)
			}
			parent := t.TempDir()
			out := filepath.Join(parent, "clean")
			r := tools.Run(t, b, "", "kubectl-recover", "backup", "--node", "master-1", "--output-dir", out)
			if r.Code != 0 {
				t.Fatalf("backup on %s: %s", tc.version, r)
			}
			m, err := backup.ReadManifest(out)
			if err != nil {
				t.Fatal(err)
			}
			if m.Version != tc.version || m.Dirty || m.HostScript != "/usr/local/bin/cluster-backup.sh" || strings.Contains(strings.Join(fileNames(m), " "), backup.DirtyMark) {
				t.Errorf("clean backup.json: %+v", m)
			}
			got := staticPodRevisions(t, filepath.Join(out, m.Files[1].Name))
			for pod, d := range dirs {
				want := d.Referenced
				if tc.takesNewest {
					want = d.Newest
				}
				if got[pod] != want {
					t.Errorf("%s: the archive holds %s, want %s (highest %s, newest %s, referenced %s)", pod, got[pod], want, d.Highest, d.Newest, d.Referenced)
				}
			}

			release, err := b.HoldRollout(ctx, "kube-apiserver")
			if err != nil {
				t.Fatal(err)
			}
			defer release()
			waitProgressing(t, b, "kube-apiserver", configv1.ConditionTrue)
			refused := filepath.Join(parent, "refused")
			r = tools.Run(t, b, "", "kubectl-recover", "backup", "--output-dir", refused)
			if r.Code != 1 || !strings.Contains(r.Stderr, "kube-apiserver is rolling out") || !strings.Contains(r.Stderr, "NodeInstallerProgressing") ||
				!strings.Contains(r.Stderr, "--force") || strings.Contains(r.Stderr, "Pass the --force flag") || strings.Contains(r.Stdout+r.Stderr, "Starting a debug pod") {
				t.Errorf("backup during a rollout: %s", r)
			}
			if _, err := os.Stat(refused); !os.IsNotExist(err) {
				t.Errorf("the refused backup created %s (%v)", refused, err)
			}
			waitNoLeftovers(t, ctx, b.Kube)

			dirty := filepath.Join(parent, "dirty")
			r = tools.Run(t, b, "", "kubectl-recover", "backup", "--force", "--output-dir", dirty)
			if r.Code != 0 || !strings.Contains(r.Stdout, "WARNING: --force: backup during a rollout") || !strings.Contains(r.Stdout, "possibly dirty") {
				t.Fatalf("backup --force during a rollout: %s", r)
			}
			m, err = backup.ReadManifest(dirty)
			if err != nil {
				t.Fatal(err)
			}
			marked := strings.Count(strings.Join(fileNames(m), " "), backup.DirtyMark)
			if !m.Dirty || len(m.Forced) != 1 || !strings.Contains(m.Forced[0], "kube-apiserver") {
				t.Errorf("dirty backup.json: %+v", m)
			}
			if tc.takesForce && (marked != 2 || m.HostScript != "/usr/local/bin/cluster-backup.sh --force") {
				t.Errorf("%s takes --force: files %v, script %q", tc.version, fileNames(m), m.HostScript)
			}
			if !tc.takesForce && (marked != 0 || m.HostScript != "/usr/local/bin/cluster-backup.sh") {
				t.Errorf("%s has no --force: files %v, script %q", tc.version, fileNames(m), m.HostScript)
			}
			r = tools.Run(t, b, "", "kubectl-recover", "backup", "verify", dirty)
			if r.Code != 0 || !strings.Contains(r.Stdout, "complete and restorable") || !strings.Contains(r.Stdout, "possibly dirty") {
				t.Errorf("backup verify of the dirty backup: %s", r)
			}
			r = tools.Run(t, b, "", "kubectl-recover", "backup", "list", parent)
			if r.Code != 0 || !regexp.MustCompile(`(?m)^dirty .*possibly dirty`).MatchString(r.Stdout) || regexp.MustCompile(`(?m)^clean .*possibly dirty`).MatchString(r.Stdout) {
				t.Errorf("backup list: %s", r)
			}
			waitNoLeftovers(t, ctx, b.Kube)
		})
	}
}

// From 4.6 the script asks the node's own kube-apiserver: a node whose
// kube-apiserver is down is passed over, and refused when named.
func TestBackupNeedsTheNodesOwnAPIServer(t *testing.T) {
	t.Parallel()
	b := boxtest.StartBox(t, box.Options{})
	if err := b.StopNodeAPIServer("master-0"); err != nil {
		t.Fatal(err)
	}
	err := box.WaitFor(context.Background(), time.Minute, "kube-apiserver-master-0 not ready", func(ctx context.Context) (bool, string, error) {
		p, err := b.Kube.CoreV1().Pods("openshift-kube-apiserver").Get(ctx, "kube-apiserver-master-0", metav1.GetOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		for _, c := range p.Status.Conditions {
			if c.Type == "Ready" {
				return c.Status != "True", string(c.Status), nil
			}
		}
		return false, "no Ready condition", nil
	})
	if err != nil {
		t.Fatal(err)
	}
	r := tools.Run(t, b, "", "kubectl-recover", "backup", "--node", "master-0", "--output-dir", filepath.Join(t.TempDir(), "x"))
	if r.Code != 1 || !strings.Contains(r.Stderr, "its own kube-apiserver (pod kube-apiserver-master-0) is not running and ready") {
		t.Errorf("--node master-0 with its kube-apiserver down: %s", r)
	}
	out := filepath.Join(t.TempDir(), "b")
	r = tools.Run(t, b, "", "kubectl-recover", "backup", "--output-dir", out)
	if m, err := backup.ReadManifest(out); r.Code != 0 || err != nil || m.Node != "master-1" {
		t.Errorf("backup with master-0's kube-apiserver down: %s", r)
	}
}

// Three backups from one node at once: each writes into a host directory
// of its own, their scripts run one at a time (the script notes when each
// run starts and ends; it takes five seconds at least, so the runs meet),
// and each reported success is a complete backup of its own files.
func TestBackupThreeAtOnceOnOneNode(t *testing.T) {
	const runs = "/home/core/assets/script-runs"
	wrapHostTool(t, shared, "master-1", "cluster-backup.sh", `#!/bin/bash
echo "start $(date +%s.%N)" >> `+runs+`
sleep 5
/usr/local/bin/cluster-backup.sh.orig "$@"
rc=$?
echo "end $(date +%s.%N)" >> `+runs+`
exit $rc
`)
	runsFile := filepath.Join(shared.Node("master-1").Sandbox.Root, runs)
	t.Cleanup(func() { _ = os.Remove(runsFile) })
	parent := t.TempDir()
	var wg sync.WaitGroup
	results := make([]boxtest.Result, 3)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = tools.Run(t, shared, "", "kubectl-recover", "backup", "--node", "master-1", "--output-dir", filepath.Join(parent, string(rune('a'+i))))
		}()
	}
	wg.Wait()
	// The scripts' runs alternate start, end, start, end: none overlapped.
	log, err := os.ReadFile(runsFile)
	if err != nil {
		t.Fatal(err)
	}
	var events []string
	for _, l := range strings.Split(strings.TrimSpace(string(log)), "\n") {
		events = append(events, strings.Fields(l)[0])
	}
	if got := strings.Join(events, " "); got != "start end start end start end" {
		t.Errorf("the three scripts ran %s, want one at a time", got)
	}
	waited := 0
	for _, r := range results {
		if strings.Contains(r.Stdout+r.Stderr, "another oc-recover backup is running the backup script on this host; waiting for it") {
			waited++
		}
	}
	if waited < 1 {
		t.Errorf("no run said it waited for another")
	}
	hostDir := regexp.MustCompile(`Removed the host copy (\S+) on master-1`)
	seen := map[string]bool{}
	for i, r := range results {
		if r.Code != 0 {
			t.Errorf("backup %d: %s", i, r)
			continue
		}
		m := hostDir.FindStringSubmatch(r.Stdout + r.Stderr)
		if m == nil || seen[m[1]] {
			t.Errorf("backup %d: its host directory is missing or shared: %s", i, r)
		} else {
			seen[m[1]] = true
		}
		dir := filepath.Join(parent, string(rune('a'+i)))
		if v := tools.Run(t, shared, "", "kubectl-recover", "backup", "verify", dir); v.Code != 0 {
			t.Errorf("backup %d does not verify: %s", i, v)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 3 {
			t.Errorf("backup %d holds %d files, want the snapshot, the archive and backup.json", i, len(entries))
		}
	}
	assertNoHostCopies(t, shared, "master-1")
	assertNoLeftovers(t, context.Background())
}

// wrapHostTool moves a host tool aside (to <name>.orig) and puts a wrapper
// around it for the test's duration.
func wrapHostTool(t *testing.T, b *box.Box, node, name, wrapper string) {
	t.Helper()
	path := filepath.Join(b.Node(node).Sandbox.Root, "usr/local/bin", name)
	if err := os.Link(path, path+".orig"); err != nil {
		t.Fatal(err)
	}
	replaceHostTool(t, b, node, name, wrapper)
	t.Cleanup(func() { _ = os.Remove(path + ".orig") })
}

// The script's own word is what counts: one that does its work but prints
// nothing is refused, though its files are there; so is one whose archive
// lacks a pod manifest a restore needs.
func TestBackupRefusesAQuietScriptAndAnIncompleteArchive(t *testing.T) {
	for name, tc := range map[string]struct{ wrapper, want string }{
		"prints nothing": {"#!/bin/bash\nexec /usr/local/bin/cluster-backup.sh.orig \"$@\" >/dev/null 2>&1\n",
			"did not itself report a snapshot_<ts>.db"},
		"no scheduler manifest": {`#!/bin/bash
set -e
/usr/local/bin/cluster-backup.sh.orig "$@"
dir="${@: -1}"
archive=$(ls "$dir"/static_kuberesources_*.tar.gz)
tmp=$(mktemp -d)
tar -xzf "$archive" -C "$tmp"
rm -f "$tmp"/static-pod-resources/kube-scheduler-pod-*/kube-scheduler-pod.yaml
tar -czf "$archive" -C "$tmp" static-pod-resources
rm -rf "$tmp"
`, "lacks static-pod-resources/kube-scheduler-pod-<N>/kube-scheduler-pod.yaml"},
	} {
		t.Run(name, func(t *testing.T) {
			wrapHostTool(t, shared, "master-2", "cluster-backup.sh", tc.wrapper)
			dir := filepath.Join(t.TempDir(), "out")
			r := tools.Run(t, shared, "", "kubectl-recover", "backup", "--node", "master-2", "--output-dir", dir)
			if r.Code != 1 || !strings.Contains(r.Stderr, tc.want) {
				t.Errorf("backup with a script that %s: %s", name, r)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				assertNothingLooksComplete(t, dir)
			}
			assertNoLeftovers(t, context.Background())
		})
	}
}

// A host script that waits on a server that never answers (here the
// node's own kube-apiserver, which the script asks for the operators'
// state) is stopped after --silence-timeout, and the error says what it was
// waiting on; nothing is left behind.
func TestBackupReportsAHostScriptThatGoesSilent(t *testing.T) {
	t.Parallel()
	b := boxtest.StartBox(t, box.Options{})
	resume, err := b.HangNodeAPIServer("master-2")
	if err != nil {
		t.Fatal(err)
	}
	defer resume()
	dir := filepath.Join(t.TempDir(), "out")
	start := time.Now()
	r := tools.Run(t, b, "", "kubectl-recover", "backup", "--node", "master-2", "--silence-timeout", "4s", "--output-dir", dir)
	if r.Code != 1 || !strings.Contains(r.Stderr, "printed nothing for 4s and was stopped") ||
		!strings.Contains(r.Stderr, "It was waiting on: oc get co kube-apiserver") || !strings.Contains(r.Stderr, "--silence-timeout") {
		t.Errorf("backup with a hung node kube-apiserver: %s", r)
	}
	if took := time.Since(start); took > time.Minute {
		t.Errorf("the silent script was reported after %s", took)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		assertNothingLooksComplete(t, dir)
	}
	assertNoHostCopies(t, b, "master-2")
	waitNoLeftovers(t, context.Background(), b.Kube)
	if r := tools.Run(t, b, "", "kubectl-recover", "backup", "--silence-timeout", "0s"); r.Code != 2 || !strings.Contains(r.Stderr, "--silence-timeout must be at least 1s") {
		t.Errorf("--silence-timeout 0s: %s", r)
	}
}

// assertNoHostCopies checks that no backup run left its host directory (or
// its trace) on node.
func assertNoHostCopies(t *testing.T, b *box.Box, node string) {
	t.Helper()
	left, _ := os.ReadDir(filepath.Join(b.Node(node).Sandbox.Root, "home/core/assets/backup"))
	for _, e := range left {
		if strings.HasPrefix(e.Name(), "oc-recover-") {
			t.Errorf("host copy %s left on %s", e.Name(), node)
		}
	}
}
