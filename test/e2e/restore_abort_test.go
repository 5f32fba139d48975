package e2e

import (
	"strings"
	"testing"
	"time"

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
