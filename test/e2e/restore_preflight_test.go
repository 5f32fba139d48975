package e2e

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/oc-recover/oc-recover/pkg/backup"
	"github.com/oc-recover/oc-recover/pkg/restore"
	"github.com/oc-recover/oc-recover/test/box"
	"github.com/oc-recover/oc-recover/test/internal/boxtest"
)

// hostDirs are what a restore moves on a control-plane host; a refused or
// planned-only restore leaves all of them as they were.
var hostDirs = []string{"etc/kubernetes/manifests", "var/lib/etcd-backup", "var/lib/oc-recover", "home/core/assets",
	"etc/kubernetes/static-pod-resources/etcd-certs/configmaps/restore-etcd-pod"}

// restoreState is what a restore that changes nothing leaves exactly as it
// was: the cluster (eraState: etcd membership and data the API holds, pods,
// namespaces, nodes, operators' specs, CSRs) and the control-plane hosts'
// files that a restore touches (/var/lib/etcd by its top entries: etcd
// writes in it all the time).
func restoreState(t *testing.T, b *box.Box) string {
	t.Helper()
	waitNoLeftovers(t, context.Background(), b.Kube)
	lines := []string{eraState(t, b)}
	for _, n := range []string{"master-0", "master-1", "master-2"} {
		root := b.Node(n).Sandbox.Root
		for _, d := range hostDirs {
			_ = filepath.WalkDir(filepath.Join(root, d), func(path string, e fs.DirEntry, err error) error {
				if err != nil || e.IsDir() {
					return nil
				}
				info, _ := e.Info()
				rel, _ := filepath.Rel(root, path)
				lines = append(lines, fmt.Sprintf("%s:%s %d", n, rel, info.Size()))
				return nil
			})
		}
		entries, _ := os.ReadDir(filepath.Join(root, "var/lib/etcd"))
		for _, e := range entries {
			lines = append(lines, n+":var/lib/etcd/"+e.Name())
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// runRestore runs the plugin with extra environment variables.
func runRestore(t *testing.T, b *box.Box, env []string, args ...string) boxtest.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(tools.BinDir, "oc-recover"), append([]string{"restore"}, args...)...)
	cmd.Env = append(append(os.Environ(), "KUBECONFIG="+b.Kubeconfig, "HOME="+t.TempDir()), env...)
	r, err := boxtest.Capture(cmd)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// rewriteArchive rewrites a static resources archive without the entries
// drop says to leave out.
func rewriteArchive(t *testing.T, path string, drop func(name string) bool) {
	t.Helper()
	in, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	zr, err := gzip.NewReader(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(path + ".new")
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(out)
	tw, tr := tar.NewWriter(zw), tar.NewReader(zr)
	dropped := 0
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if drop(strings.TrimPrefix(hdr.Name, "./")) {
			dropped++
			continue
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []io.Closer{tw, zw, out} {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if dropped == 0 {
		t.Fatalf("nothing to leave out of %s", path)
	}
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
}

// withoutManifest is a copy of a backup as cluster-backup.sh alone writes
// it: the two files, no backup.json.
func withoutManifest(t *testing.T, dir string) string {
	t.Helper()
	d := copyDir(t, dir)
	remove(t, filepath.Join(d, backup.ManifestName))
	return d
}

// The plan of a restore on a 4.14 cluster, and every refusal that needs no
// change to the cluster, on the shared box: each leaves the cluster and the
// hosts as they were.
func TestRestorePlanAndRefusals(t *testing.T) {
	dir, m := takeBackup(t)
	resources := m.Files[1].Name
	before := restoreState(t, shared)
	assertUnchanged := func(t *testing.T, what string) {
		t.Helper()
		if after := restoreState(t, shared); after != before {
			t.Errorf("%s changed the cluster or the hosts:\nbefore:\n%s\nafter:\n%s", what, before, after)
		}
	}

	r := runRestore(t, shared, nil, dir, "--dry-run")
	for _, want := range []string{
		"profile legacy (OpenShift 4.14.8)",
		"(its snapshot's clusterversions/version)",
		"identity after the restore: client certificate system:admin, issued by admin-kubeconfig-signer, which the backup's client CA bundle (openshift-kube-apiserver/client-ca in its snapshot) trusts",
		"recovery node: master-0",
		"Phase B, without the API",
		"mv /etc/kubernetes/manifests/kube-scheduler-pod.yaml /var/lib/oc-recover/restore/",
		"/usr/local/bin/cluster-restore.sh /var/lib/oc-recover/restore/",
		"kubescheduler/cluster spec.forceRedeploymentReason=recovery-",
	} {
		if r.Code != 0 || !strings.Contains(r.Stdout, want) {
			t.Errorf("restore --dry-run: want exit 0 and %q: %s", want, r)
		}
	}
	assertUnchanged(t, "restore --dry-run")

	r = runRestore(t, shared, nil, dir, "--dry-run", "-o", "json")
	var plan restore.Plan
	if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &plan) != nil {
		t.Fatalf("restore --dry-run -o json: %s", r)
	}
	if plan.Profile != restore.Legacy || plan.Recovery.Name != "master-0" || len(plan.Peers) != 2 || len(plan.Hosts) != 3 || plan.Backup.Version != "4.14.8" || plan.Backup.Revisions["etcd"] == 0 {
		t.Errorf("plan: %+v", plan)
	}
	for _, s := range plan.Steps {
		if strings.Contains(s.Command, "/tmp") || strings.HasPrefix(s.Command, "rm ") || strings.Contains(s.Command, " rm ") {
			t.Errorf("a step moves to /tmp or deletes: %+v", s)
		}
	}
	for _, h := range plan.Hosts {
		if h.VarAvail <= 0 || h.SystemdRun == "" || len(h.EtcdEntries) == 0 {
			t.Errorf("host probe of %s: %+v", h.Node, h)
		}
	}

	for _, bad := range [][]string{{"--api-timeout", "0s"}, {"--minimum-stable-period", "-1s"}} {
		r = runRestore(t, shared, nil, append([]string{dir, "--yes"}, bad...)...)
		if r.Code != 2 || !strings.Contains(r.Stderr, bad[0]+" must") {
			t.Errorf("restore %s %s: want a usage error (exit 2): %s", bad[0], bad[1], r)
		}
		assertUnchanged(t, "restore "+bad[0]+" "+bad[1])
	}

	// backup verify shows what the snapshot says of itself.
	r = tools.Run(t, shared, "", "oc-recover", "backup", "verify", dir)
	if r.Code != 0 || !strings.Contains(r.Stdout, "OpenShift 4.14.8 (the snapshot's clusterversions/version)") || !strings.Contains(r.Stdout, "certificates in the static resources, the first to expire") {
		t.Errorf("backup verify: %s", r)
	}

	t.Run("a directory cluster-backup.sh wrote alone", func(t *testing.T) {
		r := runRestore(t, shared, nil, withoutManifest(t, dir), "--dry-run")
		if r.Code != 0 || !strings.Contains(r.Stdout, "OpenShift 4.14.8 (its snapshot's clusterversions/version)") {
			t.Errorf("restore of a backup without backup.json: %s", r)
		}
	})

	kubeconfig := func(token string) string {
		path := filepath.Join(t.TempDir(), "kubeconfig")
		if err := shared.WriteKubeconfig(path, token); err != nil {
			t.Fatal(err)
		}
		return path
	}
	for _, tc := range []struct {
		name string
		dir  func(t *testing.T) string
		env  []string
		args []string
		code int
		want string
	}{
		{"a corrupt snapshot", func(t *testing.T) string {
			d := copyDir(t, dir)
			flipByte(t, filepath.Join(d, m.Files[0].Name), 20000)
			return d
		}, nil, nil, 1, "is not usable"},
		{"an archive without a pod manifest", func(t *testing.T) string {
			d := withoutManifest(t, dir)
			rewriteArchive(t, filepath.Join(d, resources), func(n string) bool { return strings.HasSuffix(n, "/kube-scheduler-pod.yaml") })
			return d
		}, nil, nil, 1, "kube-scheduler-pod-<N>/kube-scheduler-pod.yaml"},
		{"an identity the restored cluster would not know", nil, nil, []string{"--kubeconfig", kubeconfig(box.AdminToken)}, 1, "not an OAuth access token"},
		{"a user without cluster-admin", nil, nil, []string{"--kubeconfig", kubeconfig(box.DeveloperToken)}, 1, "cluster-admin"},
		{"run from inside the cluster", nil, []string{"KUBERNETES_SERVICE_HOST=172.30.0.1"}, nil, 1, "runs inside a cluster"},
		{"a recovery node that is not a control-plane node", nil, nil, []string{"--recovery-node", "worker-0"}, 2, "--recovery-node worker-0 is not a control-plane node"},
		{"a lost node that is Ready", nil, nil, []string{"--lost-node", "master-2"}, 1, "names a node that is Ready"},
		{"a directory that does not exist", func(t *testing.T) string { return filepath.Join(t.TempDir(), "nothing") }, nil, nil, 2, "is not a backup directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := dir
			if tc.dir != nil {
				d = tc.dir(t)
			}
			r := runRestore(t, shared, tc.env, append([]string{d}, tc.args...)...)
			if r.Code != tc.code || !strings.Contains(r.Stderr, tc.want) {
				t.Errorf("want exit %d and %q: %s", tc.code, tc.want, r)
			}
			assertUnchanged(t, tc.name)
			// restore prepare refuses what restore refuses, uploading nothing.
			if !slices.Contains(tc.args, "--recovery-node") && !slices.Contains(tc.args, "--lost-node") {
				r := runRestore(t, shared, tc.env, append([]string{"prepare", d}, tc.args...)...)
				if r.Code != tc.code || !strings.Contains(r.Stderr, tc.want) {
					t.Errorf("restore prepare: want exit %d and %q: %s", tc.code, tc.want, r)
				}
				assertUnchanged(t, "restore prepare of "+tc.name)
			}
		})
	}

	r = runRestore(t, shared, nil, "prepare", dir, "--dry-run")
	if r.Code != 0 || !strings.Contains(r.Stdout, "Would prepare /var/lib/oc-recover/restore/prepared on master-0, master-1, master-2 (dry run: nothing was changed)") {
		t.Errorf("restore prepare --dry-run: %s", r)
	}
	assertUnchanged(t, "restore prepare --dry-run")

	t.Run("a recovery host without the restore pod", func(t *testing.T) {
		pod := filepath.Join(shared.Node("master-1").Sandbox.Root, "etc/kubernetes/static-pod-resources/etcd-certs/configmaps/restore-etcd-pod/pod.yaml")
		data, err := os.ReadFile(pod)
		if err != nil {
			t.Fatal(err)
		}
		remove(t, pod)
		defer func() {
			if err := os.WriteFile(pod, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}()
		r := runRestore(t, shared, nil, dir, "--recovery-node", "master-1")
		if r.Code != 1 || !strings.Contains(r.Stderr, "master-1 lacks /etc/kubernetes/static-pod-resources/etcd-certs/configmaps/restore-etcd-pod/pod.yaml") {
			t.Errorf("want the missing restore pod named: %s", r)
		}
		if err := os.WriteFile(pod, data, 0o644); err != nil {
			t.Fatal(err)
		}
		assertUnchanged(t, "a recovery host without the restore pod")
	})
}
