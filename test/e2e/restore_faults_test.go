package e2e

import (
	"strings"
	"testing"
	"time"

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
