package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/oc-recover/oc-recover/pkg/restore"
	"github.com/oc-recover/oc-recover/test/box"
	"github.com/oc-recover/oc-recover/test/internal/boxtest"
)

// runRestoreFor is runRestore with a bound of its own: a whole restore
// outlasts runRestore's.
func runRestoreFor(t *testing.T, b *box.Box, bound time.Duration, args ...string) boxtest.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(tools.BinDir, "oc-recover"), append([]string{"restore"}, args...)...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+b.Kubeconfig, "HOME="+t.TempDir())
	r, err := boxtest.Capture(cmd)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// interruptRestore runs restore until its progress (stderr) shows marker,
// then interrupts it as Ctrl-C does, and returns what it printed.
func interruptRestore(t *testing.T, b *box.Box, marker string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(tools.BinDir, "oc-recover"), append([]string{"restore"}, args...)...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+b.Kubeconfig, "HOME="+t.TempDir())
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var seen strings.Builder
	sc := bufio.NewScanner(stderr)
	interrupted := false
	for sc.Scan() {
		seen.WriteString(sc.Text() + "\n")
		if !interrupted && strings.Contains(sc.Text(), marker) {
			interrupted = true
			_ = cmd.Process.Signal(os.Interrupt)
		}
	}
	err = cmd.Wait()
	if !interrupted {
		t.Fatalf("restore ended (%v) before it said %q:\n%s", err, marker, seen.String())
	}
	return seen.String(), cmd.ProcessState.ExitCode()
}

// pendingRestore is what `restore --dry-run -o json` says a run of the
// restore of dir would carry on with.
func pendingRestore(t *testing.T, b *box.Box, dir string) restore.Pending {
	t.Helper()
	r := runRestore(t, b, nil, dir, "--dry-run", "-o", "json")
	var p restore.Pending
	if err := json.Unmarshal([]byte(r.Stdout), &p); r.Code != 0 || err != nil {
		t.Fatalf("restore --dry-run -o json (%v): %s", err, r)
	}
	return p
}

// One command restores a healthy three-host cluster to its backup through
// the API and debug pods alone: the API comes back on the backup's data,
// every control-plane host has an etcd member again (new ones), the quorum
// guard is as the backup had it, the static-pod operators ran new
// revisions, and nothing of the run is left but the data each host moved
// aside. Interrupted once its hosts are armed, and again in its last
// phase, the same command resumes the restore each time, from its journal
// and then from its record in the restored cluster.
func TestRestoreThroughTheAPI(t *testing.T) {
	t.Parallel()
	b, ctx, dir, before := backedUp(t, box.Options{})
	cms := b.Kube.CoreV1().ConfigMaps("default")
	revs := map[string]int32{}
	for _, op := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
		revs[op] = latestRevision(t, ctx, b, op)
	}
	starts := b.APIServerStarts()
	// master-2's kubelet certificates expire meanwhile: restarted by its
	// part of the restore, it asks the restored cluster for new ones, and
	// phase C approves its CSRs.
	b.Node("master-2").Kubelet.ExpireCertificates()

	args := []string{dir, "--recovery-node", "master-1", "--yes", "--minimum-stable-period", "5s"}
	out, code := interruptRestore(t, b, "master-2: armed", args...)
	if code != 1 || !strings.Contains(out, "runs on the hosts without the API and goes on without this command: run the same command again") {
		t.Fatalf("restore interrupted once its hosts are armed: exit %d\n%s", code, out)
	}
	// What a re-run would carry on with, as a document: the fired restore,
	// waited for.
	if p := pendingRestore(t, b, dir); p.What != "await" || p.RecoveryNode != "master-1" || p.Restore == "" || p.Backup == "" {
		t.Errorf("restore --dry-run -o json once its hosts are armed: %+v", p)
	}
	out, code = interruptRestore(t, b, "etcd/cluster: forced a new revision", args...)
	if code != 1 || !strings.Contains(out, "resuming restore ") || !strings.Contains(out, "the API serves the restored data") {
		t.Fatalf("restore run again, interrupted in phase C: exit %d\n%s", code, out)
	}
	// Its last phase has begun: the record in the restored cluster says so,
	// once the API answers (it may not for a moment while etcd redeploys).
	var resumed restore.Pending
	if err := box.WaitFor(ctx, time.Minute, "restore --dry-run -o json to see the record", func(context.Context) (bool, string, error) {
		resumed = pendingRestore(t, b, dir)
		return resumed.What != "await", resumed.What, nil
	}); err != nil || resumed.What != "resume" || resumed.RecoveryNode != "master-1" || resumed.Dir == "" {
		t.Errorf("restore --dry-run -o json interrupted in phase C (%v): %+v", err, resumed)
	}
	r := runRestoreFor(t, b, 10*time.Minute, args...)
	if r.Code != 0 || !strings.Contains(r.Stderr, "resuming restore ") {
		t.Fatalf("restore run a third time: %s", r)
	}
	t.Logf("the third run: %s", r)
	if all := out + r.Stderr; !strings.Contains(all, "approved CSR ") {
		t.Errorf("no CSR approved for master-2's new kubelet certificates:\n%s", all)
	}
	boxtest.AssertNodeReady(t, b, "master-2", corev1.ConditionTrue)
	for _, want := range []string{"Restored the cluster to " + dir, "master-0: " + restore.StateDir + "/"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("restore says nothing of %q:\n%s", want, r)
		}
	}
	for _, want := range []string{"put back to null", "kubescheduler/cluster: forced a new revision"} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("restore's progress says nothing of %q:\n%s", want, r.Stderr)
		}
	}
	waitForRestoredData(t, ctx, b)
	if b.APIServerStarts() <= starts {
		t.Errorf("the kube-apiserver did not restart on the restored data")
	}
	assertNewMembers(t, b, before)
	assertGuardBackNoRecord(t, ctx, b)
	for op, rev := range revs {
		if got := latestRevision(t, ctx, b, op); got <= rev {
			t.Errorf("%s: latest revision %d, %d before the restore", op, got, rev)
		}
	}
	assertNoSentinel(t, ctx, b)
	waitNoLeftovers(t, ctx, b.Kube)
	// Each host keeps what it moved aside, in the restore's directory;
	// its unit is gone.
	for _, n := range []string{"master-0", "master-1", "master-2"} {
		check := "d=$(ls -d " + restore.StateDir + "/2*) && test -f $d/state/finished && test -f $d/state/done && ls $d; systemctl is-active oc-recover-restore-$(basename $d) || true"
		res := boxtest.HostRun(t, b, n, check)
		want := "etcd-data"
		if n == "master-1" {
			want = "pre-restore-member"
		}
		if res.Code != 0 || !strings.Contains(res.Stdout, want+"\n") || strings.Contains(res.Stdout, "\nactive") {
			t.Errorf("%s after the restore: %s", n, res)
		}
	}
	// A second run finds nothing to resume and would restore again: it
	// plans, and refuses nothing of the restored cluster.
	if r := runRestore(t, b, nil, dir, "--dry-run"); r.Code != 0 || !strings.Contains(r.Stdout, "Restore plan") {
		t.Errorf("restore --dry-run after the restore: %s", r)
	}
	if _, err := cms.Get(ctx, "after-backup", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("after-backup after the restore: %v", err)
	}
}

func latestRevision(t *testing.T, ctx context.Context, b *box.Box, op string) int32 {
	t.Helper()
	ops := b.Operator.OperatorV1()
	var rev int32
	var err error
	switch op {
	case "etcd":
		e, gerr := ops.Etcds().Get(ctx, "cluster", metav1.GetOptions{})
		if err = gerr; err == nil {
			rev = e.Status.LatestAvailableRevision
		}
	case "kube-apiserver":
		k, gerr := ops.KubeAPIServers().Get(ctx, "cluster", metav1.GetOptions{})
		if err = gerr; err == nil {
			rev = k.Status.LatestAvailableRevision
		}
	case "kube-controller-manager":
		k, gerr := ops.KubeControllerManagers().Get(ctx, "cluster", metav1.GetOptions{})
		if err = gerr; err == nil {
			rev = k.Status.LatestAvailableRevision
		}
	case "kube-scheduler":
		k, gerr := ops.KubeSchedulers().Get(ctx, "cluster", metav1.GetOptions{})
		if err = gerr; err == nil {
			rev = k.Status.LatestAvailableRevision
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	return rev
}

// backedUp starts a box, creates configmap before-backup, takes a backup
// and then creates configmap after-backup; it returns the etcd members of
// then.
func backedUp(t *testing.T, o box.Options) (*box.Box, context.Context, string, map[string]uint64) {
	t.Helper()
	b := boxtest.StartBox(t, o)
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	t.Cleanup(cancel)
	cms := b.Kube.CoreV1().ConfigMaps("default")
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "before-backup"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dir, _ := backupOf(t, b)
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "after-backup"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return b, ctx, dir, boxtest.MemberIDs(t, b)
}

// assertNewMembers checks that every control-plane host has a member
// again, and none the one it had before the restore.
func assertNewMembers(t *testing.T, b *box.Box, before map[string]uint64) {
	t.Helper()
	after := boxtest.MemberIDs(t, b)
	if len(after) != 3 {
		t.Errorf("etcd members after the restore: %v", after)
	}
	for n, id := range after {
		if id == before[n] {
			t.Errorf("%s kept its old member %x: it was not restored", n, id)
		}
	}
}

// assertAsItWas checks that a restore that did not happen left the cluster
// as it was: its members, its data, no record of the restore in the API
// and no debug namespace.
func assertAsItWas(t *testing.T, ctx context.Context, b *box.Box, before map[string]uint64) {
	t.Helper()
	if err := b.WaitForEtcdMembersAvailable(ctx, "3 members are available"); err != nil {
		t.Fatal(err)
	}
	if after := boxtest.MemberIDs(t, b); len(after) != 3 || after["master-0"] != before["master-0"] || after["master-1"] != before["master-1"] || after["master-2"] != before["master-2"] {
		t.Errorf("members %v, before %v", after, before)
	}
	if _, err := b.Kube.CoreV1().ConfigMaps("default").Get(ctx, "after-backup", metav1.GetOptions{}); err != nil {
		t.Errorf("the cluster's data: %v", err)
	}
	assertNoSentinel(t, ctx, b)
	waitNoLeftovers(t, ctx, b.Kube)
}

// assertGuardBackNoRecord: the quorum guard is as the backup had it (no
// override), and the restore's record is gone from etcd/cluster.
func assertGuardBackNoRecord(t *testing.T, ctx context.Context, b *box.Box) {
	t.Helper()
	e, err := b.Operator.OperatorV1().Etcds().Get(ctx, "cluster", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if raw := e.Spec.UnsupportedConfigOverrides.Raw; len(raw) != 0 && string(raw) != "null" && string(raw) != "{}" {
		t.Errorf("etcd/cluster overrides after the restore: %s", raw)
	}
	if _, ok := e.Annotations[restore.RecordAnnotation]; ok {
		t.Errorf("the restore's record is left on etcd/cluster")
	}
}

func assertNoSentinel(t *testing.T, ctx context.Context, b *box.Box) {
	t.Helper()
	list, err := b.Kube.CoreV1().ConfigMaps(restore.SentinelNamespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, cm := range list.Items {
		if strings.HasPrefix(cm.Name, restore.SentinelPrefix) {
			t.Errorf("configmap %s/%s is left", cm.Namespace, cm.Name)
		}
	}
}

// A host whose unit cannot be armed: the hosts armed before it are
// disarmed (the peer that had stopped its etcd and moved its data puts
// them back), the record is removed, and the cluster keeps its members
// and its data.
func TestRestoreDisarmsWhenAHostCannotBeArmed(t *testing.T) {
	t.Parallel()
	b, ctx, dir, before := backedUp(t, box.Options{})
	if err := b.RefuseTransientUnits("master-2", true); err != nil {
		t.Fatal(err)
	}
	r := runRestoreFor(t, b, 5*time.Minute, dir, "--recovery-node", "master-0", "--yes")
	if r.Code != 1 || !strings.Contains(r.Stderr, "arm master-2: systemd-run: exit 1: Failed to start transient service unit: Connection timed out") ||
		!strings.Contains(r.Stderr, "disarmed and are as they were: nothing was restored") {
		t.Fatalf("restore with master-2 refusing units: %s", r)
	}
	for _, want := range []string{"master-0: armed", "master-1: armed", "master-0: disarmed", "master-1: disarmed"} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("restore's progress says nothing of %q:\n%s", want, r.Stderr)
		}
	}
	assertAsItWas(t, ctx, b, before)
	check := "ls /etc/kubernetes/manifests; test -d /var/lib/etcd/member && d=$(ls -d " + restore.StateDir + "/2*) && test -f $d/state/rolled-back && test ! -e $d/etcd-data"
	if res := boxtest.HostRun(t, b, "master-1", check); res.Code != 0 || !strings.Contains(res.Stdout, "etcd-pod.yaml\nkube-apiserver-pod.yaml\nkube-controller-manager-pod.yaml\nkube-scheduler-pod.yaml\n") {
		t.Errorf("master-1 after the disarm: %s", res)
	}
	if res := boxtest.HostRun(t, b, "master-0", "d=$(ls -d "+restore.StateDir+"/2*) && test -f $d/state/rolled-back && test ! -e $d/state/restore-started && test ! -e /var/lib/etcd-backup"); res.Code != 0 {
		t.Errorf("master-0 after the disarm: %s", res)
	}
	// restore status shows it: nothing under way in the API, and on the
	// hosts the disarmed restore's directories with their markers.
	st := runRestore(t, b, nil, "status", dir)
	if st.Code != 0 || !strings.Contains(st.Stdout, "No restore is under way in the API.") || strings.Contains(st.Stdout, "Journal:") {
		t.Errorf("restore status after the disarm: %s", st)
	}
	for _, want := range []string{"master-0:\n  " + restore.StateDir + "/", "master-1:\n  " + restore.StateDir + "/", "rolled-back 20", "aborted: this host is as it was"} {
		if !strings.Contains(st.Stdout, want) {
			t.Errorf("restore status says nothing of %q:\n%s", want, st.Stdout)
		}
	}
	js := runRestore(t, b, nil, "status", "-o", "json")
	var standing restore.Standing
	if err := json.Unmarshal([]byte(js.Stdout), &standing); js.Code != 0 || err != nil {
		t.Fatalf("restore status -o json: %v %s", err, js)
	}
	if len(standing.Hosts) != 3 || len(standing.Fired) != 0 || standing.Record != nil {
		t.Errorf("restore status -o json: %+v", standing)
	}
	for _, h := range standing.Hosts {
		if len(h.Restores) != 1 || h.Error != "" || h.Restores[0].Unit == "active" {
			t.Errorf("%s: %+v", h.Node, h)
			continue
		}
		if _, rolledBack := h.Restores[0].Markers["rolled-back"]; rolledBack != (h.Node != "master-2") {
			t.Errorf("%s's markers: %v (master-2 was never armed)", h.Node, h.Restores[0].Markers)
		}
	}
	waitNoLeftovers(t, ctx, b.Kube)
}

// A host whose etcd never stops: the recovery host gives up after
// --peer-stop-timeout, changing nothing, and the command, which watches its
// unit while the old cluster answers, disarms the peers at once: the one
// that had stopped its etcd puts everything back. The cluster keeps its
// members and its data, and a re-run plans a new restore.
func TestRestoreUndoneWhenAHostsEtcdNeverStops(t *testing.T) {
	t.Parallel()
	b, ctx, dir, before := backedUp(t, box.Options{})
	if err := b.UnstoppableEtcd("master-2", true); err != nil {
		t.Fatal(err)
	}
	r := runRestoreFor(t, b, 5*time.Minute, dir, "--recovery-node", "master-0", "--yes", "--peer-stop-timeout", "20s")
	if r.Code != 1 || !strings.Contains(r.Stderr, "not restored: the recovery host master-0 ended its part without restoring; the cluster is as it was") ||
		!strings.Contains(r.Stderr, "etcd still answers on "+b.Node("master-2").IP.String()+" after 20s: nothing was changed here") {
		t.Fatalf("restore with master-2's etcd never stopping: %s", r)
	}
	if !strings.Contains(r.Stderr, "master-1: disarmed") {
		t.Errorf("master-1 was not disarmed:\n%s", r.Stderr)
	}
	if err := b.UnstoppableEtcd("master-2", false); err != nil {
		t.Fatal(err)
	}
	assertAsItWas(t, ctx, b, before)
	for _, n := range []string{"master-1", "master-2"} {
		if res := boxtest.HostRun(t, b, n, "ls /etc/kubernetes/manifests; test -d /var/lib/etcd/member && test -f $(ls -d "+restore.StateDir+"/2*)/state/rolled-back"); res.Code != 0 || !strings.Contains(res.Stdout, "etcd-pod.yaml\nkube-apiserver-pod.yaml\nkube-controller-manager-pod.yaml\nkube-scheduler-pod.yaml\n") {
			t.Errorf("%s after the restore was undone: %s", n, res)
		}
	}
	// The journal says it ended: a re-run plans a new restore.
	if r := runRestore(t, b, nil, dir, "--dry-run"); r.Code != 0 || !strings.Contains(r.Stdout, "Restore plan") {
		t.Errorf("restore --dry-run after the undone restore: %s", r)
	}
}

// On 4.18 (the modern profile) the hosts stop etcd alone with
// disable-etcd.sh and no kubelet restarts; phase C redeploys etcd only.
func TestRestoreThroughTheAPIOnAModernRelease(t *testing.T) {
	t.Parallel()
	b, ctx, dir, before := backedUp(t, box.Options{Version: "4.18.3"})
	kas := latestRevision(t, ctx, b, "kube-apiserver")
	r := runRestoreFor(t, b, 8*time.Minute, dir, "--yes", "--minimum-stable-period", "5s")
	if r.Code != 0 || !strings.Contains(r.Stdout, "Restored the cluster to "+dir) {
		t.Fatalf("restore on 4.18: %s", r)
	}
	if strings.Contains(r.Stderr, "kubeapiserver/cluster: forced") {
		t.Errorf("the modern profile redeployed the kube-apiserver:\n%s", r.Stderr)
	}
	waitForRestoredData(t, ctx, b)
	assertNewMembers(t, b, before)
	// As the 4.18 restore pod does, the revisions jumped past any the old
	// cluster served, so that the kube-apiservers that kept running relist.
	cli, err := b.EtcdClient()
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if resp, err := cli.Get(ctx, "/", clientv3.WithCountOnly()); err != nil || resp.Header.Revision < 1_000_000_000 {
		t.Errorf("etcd's revision after the restore: %v %v", resp, err)
	}
	if got := latestRevision(t, ctx, b, "kube-apiserver"); got != kas {
		t.Errorf("kube-apiserver revision %d, %d before", got, kas)
	}
	for _, n := range []string{"master-1", "master-2"} {
		if res := boxtest.HostRun(t, b, n, "ls /etc/kubernetes/manifests"); res.Code != 0 || !strings.Contains(res.Stdout, "kube-apiserver-pod.yaml") || !strings.Contains(res.Stdout, "etcd-pod.yaml") {
			t.Errorf("%s's static pods after the restore: %s", n, res)
		}
	}
	waitNoLeftovers(t, ctx, b.Kube)
}
