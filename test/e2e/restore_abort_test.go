package e2e

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/oc-recover/oc-recover/pkg/restore"
	"github.com/oc-recover/oc-recover/test/box"
	"github.com/oc-recover/oc-recover/test/internal/boxtest"
)

// A restore interrupted once its hosts are armed, while master-2's etcd
// will not stop (so the recovery host waits), is called back by `restore
// abort`: the recovery host's part is aborted first and never begins,
// master-1 puts its data and static pods back, the journal ends and the
// record goes. The cluster keeps its members and its data; a second abort
// finds nothing to call back, and a re-run plans a new restore.
func TestRestoreAbortCallsBackAnArmedRestore(t *testing.T) {
	t.Parallel()
	b, ctx, dir, before := backedUp(t, box.Options{})
	if err := b.UnstoppableEtcd("master-2", true); err != nil {
		t.Fatal(err)
	}
	out, code := interruptRestore(t, b, "master-2: armed", dir, "--recovery-node", "master-0", "--yes", "--peer-stop-timeout", "10m")
	if code != 1 || !strings.Contains(out, "call it back with `restore abort "+dir+"`") {
		t.Fatalf("restore interrupted once armed: exit %d\n%s", code, out)
	}
	// master-1 has done its part meanwhile: etcd stopped, data moved.
	boxtest.WaitForHost(t, b, "master-1", "test -f $(ls -d "+restore.StateDir+"/2*)/state/data-moved && echo moved", "moved\n")
	st := runRestore(t, b, nil, "status", dir)
	if st.Code != 0 || !strings.Contains(st.Stdout, "Journal: restore ") || !strings.Contains(st.Stdout, "recorded in the live API") || !strings.Contains(st.Stdout, "unit active") {
		t.Errorf("restore status of the armed restore: %s", st)
	}

	// Without the restore's record in the live API the API would serve the
	// restored data: abort refuses, and changes nothing.
	j, err := restore.InFlight(dir)
	if err != nil || j == nil {
		t.Fatalf("the armed restore's journal: %v %v", j, err)
	}
	cms := b.Kube.CoreV1().ConfigMaps(restore.SentinelNamespace)
	sentinel, err := cms.Get(ctx, restore.SentinelPrefix+strings.ToLower(j.Plan.ID), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := cms.Delete(ctx, sentinel.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if r := runRestore(t, b, nil, "abort", dir); r.Code != 1 || !strings.Contains(r.Stderr, "refusing to abort, nothing was changed: the API answers without the record of restore "+j.Plan.ID) {
		t.Errorf("restore abort without the restore's record: %s", r)
	}
	if res := boxtest.HostRun(t, b, "master-0", "systemctl is-active oc-recover-restore-"+j.Plan.ID+"; ls "+restore.StateDir+"/"+j.Plan.ID+"/state | grep -x -e aborted -e peers-stopped -e restore-started"); res.Stdout != "active\n" {
		t.Errorf("master-0 after the refused abort (still armed, no marker): %s", res)
	}
	if j2, err := restore.InFlight(dir); err != nil || j2 == nil {
		t.Errorf("the refused abort ended the journal: %v %v", j2, err)
	}
	sentinel.ResourceVersion, sentinel.UID = "", ""
	if _, err := cms.Create(ctx, sentinel, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	r := runRestoreFor(t, b, 4*time.Minute, "abort", dir)
	if r.Code != 0 || !strings.Contains(r.Stdout, "Called back restore ") {
		t.Fatalf("restore abort: %s", r)
	}
	if i, j := strings.Index(r.Stderr, "master-0: disarmed"), strings.Index(r.Stderr, "master-1: disarmed"); i < 0 || j < i {
		t.Errorf("the recovery host is not disarmed first:\n%s", r.Stderr)
	}
	if err := b.UnstoppableEtcd("master-2", false); err != nil {
		t.Fatal(err)
	}
	assertAsItWas(t, ctx, b, before)
	if res := boxtest.HostRun(t, b, "master-0", "d=$(ls -d "+restore.StateDir+"/2*) && test -f $d/state/aborted && test ! -e $d/state/peers-stopped && test ! -e /var/lib/etcd-backup && systemctl is-active oc-recover-restore-$(basename $d) || true"); res.Code != 0 || res.Stdout == "active\n" {
		t.Errorf("master-0 after the abort: %s", res)
	}
	if res := boxtest.HostRun(t, b, "master-1", "ls /etc/kubernetes/manifests; test -d /var/lib/etcd/member && test -f $(ls -d "+restore.StateDir+"/2*)/state/rolled-back"); res.Code != 0 || !strings.Contains(res.Stdout, "etcd-pod.yaml\nkube-apiserver-pod.yaml\nkube-controller-manager-pod.yaml\nkube-scheduler-pod.yaml\n") {
		t.Errorf("master-1 after the abort: %s", res)
	}
	if r := runRestore(t, b, nil, "abort", dir); r.Code != 0 || !strings.Contains(r.Stdout, "nothing to call back") {
		t.Errorf("a second restore abort: %s", r)
	}
	if r := runRestore(t, b, nil, dir, "--dry-run"); r.Code != 0 || !strings.Contains(r.Stdout, "Restore plan") {
		t.Errorf("restore --dry-run after the abort: %s", r)
	}
}
