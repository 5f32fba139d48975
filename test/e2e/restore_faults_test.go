package e2e

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/oc-recover/oc-recover/pkg/restore"
	"github.com/oc-recover/oc-recover/test/box"
	"github.com/oc-recover/oc-recover/test/internal/boxtest"
)

// A restore whose API does not come back (the recovery host's
// kube-apiserver crash-loops on the restored data) is waited for until
// --api-timeout: the command then exits 1 naming what to read on the
// recovery host's console, and keeps its journal, which `restore status`
// shows with the API down. Once the kube-apiserver runs, the same command
// finishes the restore.
func TestRestoreWhoseAPIDoesNotComeBack(t *testing.T) {
	t.Parallel()
	b, ctx, dir, _ := backedUp(t, box.Options{})
	if err := b.CrashLoopKubeAPIServer("master-0", true); err != nil {
		t.Fatal(err)
	}
	args := []string{dir, "--recovery-node", "master-0", "--yes", "--minimum-stable-period", "5s"}
	r := runRestoreFor(t, b, 8*time.Minute, append(args, "--api-timeout", "1m")...)
	if r.Code != 1 || !strings.Contains(r.Stderr, "the restored API did not answer within 1m0s (--api-timeout)") || !strings.Contains(r.Stderr, "journalctl -u oc-recover-restore-") {
		t.Fatalf("restore whose API does not come back: %s", r)
	}
	j, err := restore.InFlight(dir)
	if err != nil || j == nil {
		t.Fatalf("the restore's journal after --api-timeout: %v %v", j, err)
	}
	if st := runRestore(t, b, nil, "status", dir); st.Code != 0 || !strings.Contains(st.Stdout, "Journal: restore "+j.Plan.ID) || !strings.Contains(st.Stdout, "The API does not answer") {
		t.Errorf("restore status with the restored API down: %s", st)
	}
	// What the message says to read: the recovery host waits for its
	// kube-apiserver.
	if res := boxtest.HostRun(t, b, "master-0", "tail -n 1 "+restore.StateDir+"/"+j.Plan.ID+"/run.log"); !strings.Contains(res.Stdout, "waiting for etcd to serve the restored cluster and the kube-apiserver to answer") {
		t.Errorf("master-0's run.log: %s", res)
	}

	if err := b.CrashLoopKubeAPIServer("master-0", false); err != nil {
		t.Fatal(err)
	}
	r = runRestoreFor(t, b, 10*time.Minute, args...)
	if r.Code != 0 || !strings.Contains(r.Stdout, "Restored the cluster to "+dir) {
		t.Fatalf("restore run again once the kube-apiserver runs: %s", r)
	}
	waitForRestoredData(t, ctx, b)
	if ids := boxtest.MemberIDs(t, b); len(ids) != 3 {
		t.Errorf("etcd members after the restore: %v", ids)
	}
	assertGuardBackNoRecord(t, ctx, b)
	assertNoSentinel(t, ctx, b)
	waitNoLeftovers(t, ctx, b.Kube)
	if j, err := restore.InFlight(dir); err != nil || j != nil {
		t.Errorf("the journal after the restore: %v %v", j, err)
	}
}

// A peer that reboots in the middle of a restore, once it has moved its
// etcd data aside: its unit is gone with the boot (systemd-run units are
// transient), and its kubelet comes back with no static pods. The restore
// goes on without it: the recovery host restores once the other peer's etcd
// has stopped, and the etcd operator's redeployment gives the rebooted host
// its pods and a new member, as on a host whose part had finished.
func TestRestoreWithAPeerThatRebootsMidRestore(t *testing.T) {
	t.Parallel()
	b, ctx, dir, before := backedUp(t, box.Options{})
	// master-1's etcd is slow to stop: master-0 waits for it while
	// master-2 has moved its data aside.
	if err := b.UnstoppableEtcd("master-1", true); err != nil {
		t.Fatal(err)
	}
	result := make(chan boxtest.Result, 1)
	go func() {
		result <- runRestoreFor(t, b, 12*time.Minute, dir, "--recovery-node", "master-0", "--yes", "--minimum-stable-period", "5s", "--peer-stop-timeout", "5m")
	}()
	boxtest.WaitForHost(t, b, "master-2", "ls "+restore.StateDir+"/2*/state/data-moved >/dev/null 2>&1 && echo moved", "moved\n")
	if r := boxtest.HostRun(t, b, "master-2", "shutdown -r now"); r.Code != 0 {
		t.Fatalf("shutdown -r now on master-2: %s", r)
	}
	boxtest.WaitForHost(t, b, "master-2", "systemctl is-active kubelet; systemctl is-active 'oc-recover-restore-*' || true", "active\ninactive\n")
	if err := b.UnstoppableEtcd("master-1", false); err != nil {
		t.Fatal(err)
	}
	r := <-result
	if r.Code != 0 || !strings.Contains(r.Stdout, "Restored the cluster to "+dir) {
		t.Fatalf("restore with master-2 rebooted mid-restore: %s", r)
	}
	t.Logf("restore: %s", r)
	waitForRestoredData(t, ctx, b)
	assertNewMembers(t, b, before)
	boxtest.AssertNodeReady(t, b, "master-2", corev1.ConditionTrue)
	assertGuardBackNoRecord(t, ctx, b)
	assertNoSentinel(t, ctx, b)
	waitNoLeftovers(t, ctx, b.Kube)
	// The rebooted host keeps what it moved aside.
	if res := boxtest.HostRun(t, b, "master-2", "ls "+restore.StateDir+"/2*/"); res.Code != 0 || !strings.Contains(res.Stdout, "etcd-data\n") {
		t.Errorf("master-2 after the restore: %s", res)
	}
}
