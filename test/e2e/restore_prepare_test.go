package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/oc-recover/oc-recover/pkg/backup"
	"github.com/oc-recover/oc-recover/pkg/member"
	"github.com/oc-recover/oc-recover/pkg/restore"
	"github.com/oc-recover/oc-recover/test/box"
	"github.com/oc-recover/oc-recover/test/internal/boxtest"
)

// With the backup prepared while the cluster was healthy (by the backup
// command itself, `backup --prepare-restore`; the other console tests use
// `restore prepare`), a cluster that lost two of its three control-plane
// hosts for good is restored by one command on the surviving host's
// console: the API comes back on the restored data, on the endpoint the
// kubeconfig names, with one member. Then `restore --lost-node` for the
// two finishes it: their Machines are replaced, and every control-plane
// node has a member again.
func TestRestorePreparedFromTheConsoleAfterQuorumLoss(t *testing.T) {
	t.Parallel()
	restorePreparedFromTheConsole(t, "")
}

// The same on 4.18, whose restore keeps the kube-apiserver running on the
// surviving host: its etcd comes back with a new cluster ID under it.
func TestRestorePreparedFromTheConsoleAfterQuorumLossOnAModernRelease(t *testing.T) {
	t.Parallel()
	restorePreparedFromTheConsole(t, "4.18.3")
}

func restorePreparedFromTheConsole(t *testing.T, version string) {
	// The simulated controllers lose their leader-election leases in an
	// outage this long and restart with fresh caches, as a real cluster's do
	// in a quorum loss that lasts (leaderelection.go in the box).
	b := boxtest.StartBox(t, box.Options{Version: version, LeaderRenewDeadline: 2 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cms := b.Kube.CoreV1().ConfigMaps("default")
	configMap := func(name string) {
		t.Helper()
		if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	configMap("before-backup")
	dir := filepath.Join(t.TempDir(), "backup")
	r := tools.Run(t, b, "", "oc-recover", "backup", "--output-dir", dir, "--prepare-restore")
	if r.Code != 0 || !strings.Contains(r.Stdout, "Verified: sha256 trailer") {
		t.Fatalf("backup --prepare-restore: %s", r)
	}
	m, err := backup.ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, f := range m.Files {
		files = append(files, "backup/"+f.Name)
	}
	if len(files) != 2 {
		t.Fatalf("backup files: %v", files)
	}
	for _, want := range []string{"in " + restore.PreparedDir + " on master-0, master-1, master-2",
		"master-1: bash " + restore.PreparedDir + "/run.sh peer master-0", "master-0: bash " + restore.PreparedDir + "/run.sh recovery"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("restore prepare says nothing of %q:\n%s", want, r)
		}
	}
	for _, n := range []string{"master-0", "master-1", "master-2"} {
		root := filepath.Join(b.Node(n).Sandbox.Root, restore.PreparedDir)
		for _, f := range append(files, "run.sh", "plan.env") {
			if _, err := os.Stat(filepath.Join(root, f)); err != nil {
				t.Errorf("%s: %v", n, err)
			}
		}
		env, _ := os.ReadFile(filepath.Join(root, "plan.env"))
		if !strings.Contains(string(env), "THIS_NODE='"+n+"'\n") || !strings.Contains(string(env), "OLD_CLUSTER_ID=") {
			t.Errorf("%s's plan.env:\n%s", n, env)
		}
	}
	waitNoLeftovers(t, ctx, b.Kube)
	configMap("after-backup")

	// Two hosts lost for good: etcd has no quorum, the API no longer serves.
	if err := b.StopMachine(ctx, "master-1"); err != nil {
		t.Fatal(err)
	}
	_ = b.StopMachine(ctx, "master-2")
	run := "bash " + restore.PreparedDir + "/run.sh recovery"
	restoring := time.Now()
	if res := boxtest.HostRun(t, b, "master-0", run); res.Code != 0 || !strings.Contains(res.Stdout, "done: etcd serves cluster") {
		t.Fatalf("on master-0's console, %q: %s", run, res)
	}
	waitForRestoredData(t, ctx, b)
	if ids := boxtest.MemberIDs(t, b); len(ids) != 1 || ids["master-0"] == 0 {
		t.Errorf("etcd members after the restore: %v", ids)
	}
	if err := box.WaitFor(ctx, time.Minute, "the simulated controllers restarted after the outage", func(context.Context) (bool, string, error) {
		return b.CacheRestarts() > 0, "", nil
	}); err != nil {
		t.Fatal(err)
	}
	// The pre-restore data is kept in the prepared directory, nothing in /tmp;
	// a second run changes nothing.
	if res := boxtest.HostRun(t, b, "master-0", "test -d "+restore.PreparedDir+"/pre-restore-member/snap && ls -A /tmp | wc -l"); res.Code != 0 || res.Stdout != "0\n" {
		t.Errorf("after the restore: %s", res)
	}
	if res := boxtest.HostRun(t, b, "master-0", run); res.Code != 0 || !strings.Contains(res.Stdout, "already done") {
		t.Errorf("a second run: %s", res)
	}
	finishLostNodes(t, ctx, b, dir, restoring)
}

// finishLostNodes runs `restore --lost-node` for master-1 and master-2
// after master-0 restored from its console, and checks the end state:
// their Machines replaced, a member on master-0 and on each new node, the
// quorum guard as before, the prepared directory marked finished.
func finishLostNodes(t *testing.T, ctx context.Context, b *box.Box, dir string, restoring time.Time) {
	t.Helper()
	machines := b.Machine.MachineV1beta1().Machines("openshift-machine-api")
	old := map[string]string{}
	list, err := machines.List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range list.Items {
		if m.Status.NodeRef != nil {
			old[m.Status.NodeRef.Name] = m.Name
		}
	}
	lost := []string{"--lost-node", "master-1", "--lost-node", "master-2"}
	// As the administrator sees it before running the command: the lost
	// nodes not Ready once the node lifecycle controller judged them,
	// master-0 Ready.
	boxtest.AssertNodeReady(t, b, "master-1", corev1.ConditionUnknown)
	boxtest.AssertNodeReady(t, b, "master-2", corev1.ConditionUnknown)
	waitReadyPostedSince(t, b, "master-0", restoring)
	// Without --lost-node, the hosts that are down are named.
	if r := runRestore(t, b, nil, dir, "--dry-run"); r.Code != 1 || !strings.Contains(r.Stderr, "name them with --lost-node") {
		t.Errorf("restore --dry-run with master-1 and master-2 down and not named lost: %s", r)
	}
	if r := runRestore(t, b, nil, append([]string{dir, "--dry-run"}, lost...)...); r.Code != 0 || !strings.Contains(r.Stdout, "The cluster runs on the restore done on master-0's console") ||
		!strings.Contains(r.Stdout, "replace lost node master-1's Machine") {
		t.Errorf("restore --dry-run after the console restore: %s", r)
	}
	r := runRestoreFor(t, b, 12*time.Minute, append([]string{dir, "--yes", "--minimum-stable-period", "5s"}, lost...)...)
	if r.Code != 0 || !strings.Contains(r.Stdout, "Restored the cluster to "+dir) {
		t.Fatalf("restore --lost-node after the console restore: %s", r)
	}
	t.Logf("restore --lost-node: %s", r)
	list, err = machines.List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	newNodes := map[string]bool{}
	for _, m := range list.Items {
		switch {
		case m.Name == old["master-1"] || m.Name == old["master-2"]:
			t.Errorf("machine %s of a lost node is left", m.Name)
		case m.Annotations[member.ReplacesNodeAnnotation] != "":
			if m.Status.NodeRef == nil {
				t.Errorf("machine %s has no node", m.Name)
				continue
			}
			newNodes[m.Status.NodeRef.Name] = true
			if !strings.Contains(r.Stdout, "Lost node "+m.Annotations[member.ReplacesNodeAnnotation]+" was replaced by node "+m.Status.NodeRef.Name) {
				t.Errorf("restore says nothing of %s replacing %s:\n%s", m.Status.NodeRef.Name, m.Annotations[member.ReplacesNodeAnnotation], r.Stdout)
			}
		}
	}
	if len(newNodes) != 2 {
		t.Errorf("machines replacing the lost nodes: %v", list.Items)
	}
	ids := boxtest.MemberIDs(t, b)
	if len(ids) != 3 || ids["master-0"] == 0 {
		t.Errorf("etcd members: %v", ids)
	}
	for n := range newNodes {
		if ids[n] == 0 {
			t.Errorf("new node %s has no etcd member: %v", n, ids)
		}
		boxtest.AssertNodeReady(t, b, n, corev1.ConditionTrue)
	}
	for _, n := range []string{"master-1", "master-2"} {
		if _, err := b.Kube.CoreV1().Nodes().Get(ctx, n, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("node %s of a lost host: %v", n, err)
		}
	}
	assertGuardBackNoRecord(t, ctx, b)
	if res := boxtest.HostRun(t, b, "master-0", "test -f "+restore.PreparedDir+"/state/finished && test -d "+restore.PreparedDir+"/pre-restore-member"); res.Code != 0 {
		t.Errorf("master-0's prepared directory after the restore: %s", res)
	}
	waitNoLeftovers(t, ctx, b.Kube)
	// Finished: a new run plans a new restore.
	if r := runRestore(t, b, nil, dir, "--dry-run"); r.Code != 0 || !strings.Contains(r.Stdout, "Restore plan") {
		t.Errorf("restore --dry-run once finished: %s", r)
	}
}

// waitReadyPostedSince waits until node's kubelet has said it is Ready
// since the time given. The restored data says Ready from the backup's
// time, and a kubelet restarted meanwhile has its node marked NotReady
// before it posts Ready again: only its own report is settled. A kubelet
// that kept running through the restore (4.18 restarts none) posts its
// status only when it changes; its renewed lease is its word.
func waitReadyPostedSince(t *testing.T, b *box.Box, node string, since time.Time) {
	t.Helper()
	err := box.WaitFor(context.Background(), 2*time.Minute, node+" Ready as its kubelet says", func(ctx context.Context) (bool, string, error) {
		n, err := b.Kube.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		var ready *corev1.NodeCondition
		for i := range n.Status.Conditions {
			if n.Status.Conditions[i].Type == corev1.NodeReady {
				ready = &n.Status.Conditions[i]
			}
		}
		if ready == nil {
			return false, "no Ready condition", nil
		}
		state := fmt.Sprintf("Ready=%s, heartbeat %s", ready.Status, ready.LastHeartbeatTime.UTC().Format(time.RFC3339))
		if ready.Status != corev1.ConditionTrue {
			return false, state, nil
		}
		if !ready.LastHeartbeatTime.Time.Before(since.Truncate(time.Second)) {
			return true, state, nil
		}
		if active, serviceSince, _ := b.Node(node).Kubelet.ServiceStatus(); !active || !serviceSince.Before(since) {
			return false, state + ", kubelet restarted since", nil
		}
		l, err := b.Kube.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			return false, state + ", lease: " + err.Error(), nil
		}
		renewed := l.Spec.RenewTime != nil && l.Spec.RenewTime.After(since)
		return renewed, state + ", kubelet kept running, lease renewed since: " + fmt.Sprint(renewed), nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// waitForRestoredData waits until the API serves the backup's data:
// configmap before-backup, and no after-backup.
func waitForRestoredData(t *testing.T, ctx context.Context, b *box.Box) {
	t.Helper()
	cms := b.Kube.CoreV1().ConfigMaps("default")
	err := box.WaitFor(ctx, 2*time.Minute, "the API serving the restored data", func(ctx context.Context) (bool, string, error) {
		if _, err := cms.Get(ctx, "before-backup", metav1.GetOptions{}); err != nil {
			return false, "before-backup: " + err.Error(), nil
		}
		_, err := cms.Get(ctx, "after-backup", metav1.GetOptions{})
		return apierrors.IsNotFound(err), "after-backup: " + errString(err), nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func errString(err error) string {
	if err == nil {
		return "exists"
	}
	return err.Error()
}

// prepared starts a box, takes a backup with configmap before-backup in it,
// prepares it on every host and then creates after-backup.
func prepared(t *testing.T) (*box.Box, context.Context) {
	t.Helper()
	b := boxtest.StartBox(t, box.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	t.Cleanup(cancel)
	cms := b.Kube.CoreV1().ConfigMaps("default")
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "before-backup"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dir, _ := backupOf(t, b)
	if r := runRestore(t, b, nil, "prepare", dir); r.Code != 0 {
		t.Fatalf("restore prepare: %s", r)
	}
	waitNoLeftovers(t, ctx, b.Kube)
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "after-backup"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return b, ctx
}

// runOn runs the prepared runner on each host at once, the recovery host a
// moment after the peers, as the consoles would.
func runOn(b *box.Box, recovery string, peers ...string) map[string]boxtest.Result {
	return runOnAfter(b, func() {}, recovery, peers...)
}

// runOnAfter is runOn with meanwhile run once the peers wait, before the
// recovery host starts.
func runOnAfter(b *box.Box, meanwhile func(), recovery string, peers ...string) map[string]boxtest.Result {
	type out struct {
		node string
		r    boxtest.Result
	}
	results := make(chan out, len(peers)+1)
	run := func(node, args string) {
		r, err := boxtest.HostRunFor(b, node, "bash "+restore.PreparedDir+"/run.sh "+args, 4*time.Minute)
		if err != nil {
			r.Stderr += err.Error()
			r.Code = -1
		}
		results <- out{node, r}
	}
	for _, p := range peers {
		go run(p, "peer "+recovery)
	}
	time.Sleep(2 * time.Second)
	meanwhile()
	go run(recovery, "recovery")
	all := map[string]boxtest.Result{}
	for range len(peers) + 1 {
		o := <-results
		all[o.node] = o.r
	}
	return all
}

// With every host up, one command per host: the peers stop and move their
// data aside, the recovery host restores once their etcd is gone, the
// peers restart their kubelets once it serves the new cluster.
func TestRestorePreparedFromTheConsolesOfEveryHost(t *testing.T) {
	t.Parallel()
	b, ctx := prepared(t)
	// While the peers wait, the recovery host's etcd does not answer for a
	// while (as during its restore): they keep waiting.
	down := func() {
		stop := "sleep 5 && mv /etc/kubernetes/manifests/etcd-pod.yaml /root/ && sleep 10 && mv /root/etcd-pod.yaml /etc/kubernetes/manifests/"
		if r, err := boxtest.HostRunFor(b, "master-0", stop, time.Minute); err != nil || r.Code != 0 {
			t.Errorf("take master-0's etcd away for a while: %v %s", err, r)
		}
	}
	for node, r := range runOnAfter(b, down, "master-0", "master-1", "master-2") {
		if r.Code != 0 || !strings.Contains(r.Stdout, "done: ") {
			t.Errorf("run.sh on %s: %s", node, r)
		}
	}
	waitForRestoredData(t, ctx, b)
	if ids := boxtest.MemberIDs(t, b); len(ids) != 1 || ids["master-0"] == 0 {
		t.Errorf("etcd members after the restore: %v", ids)
	}
	for _, n := range []string{"master-1", "master-2"} {
		check := "test -d " + restore.PreparedDir + "/etcd-data/member && test -f " + restore.PreparedDir + "/state/kubelet-restarted && ls " + restore.PreparedDir + "/manifests && ls /etc/kubernetes/manifests"
		if r := boxtest.HostRun(t, b, n, check); r.Code != 0 || r.Stdout != "etcd-pod.yaml\nkube-apiserver-pod.yaml\nkube-controller-manager-pod.yaml\nkube-scheduler-pod.yaml\n" {
			t.Errorf("%s after its part: %s", n, r)
		}
	}
	// Restored: an abort on the recovery host is too late, and changes nothing.
	if r := boxtest.HostRun(t, b, "master-0", "bash "+restore.PreparedDir+"/run.sh abort"); r.Code != 3 || !strings.Contains(r.Stdout, "too late to abort") {
		t.Errorf("run.sh abort on the restored recovery host: %s", r)
	}
	if r := boxtest.HostRun(t, b, "master-0", "test ! -e "+restore.PreparedDir+"/state/aborted && test ! -e "+restore.PreparedDir+"/state/rolled-back"); r.Code != 0 {
		t.Errorf("the recovery host after a refused abort: %s", r)
	}
}

// A host whose part is never run keeps its etcd answering: the recovery
// host changes nothing after its deadline, and the peer that did its part
// puts everything back once its own deadline passes with the old cluster
// still served. The cluster stays as it was.
func TestRestorePreparedRollsBackWhenAHostKeepsItsEtcd(t *testing.T) {
	t.Parallel()
	b, ctx := prepared(t)
	short := "sed -i -e 's/^RECOVERY_DEADLINE=.*/RECOVERY_DEADLINE=10/' -e 's/^PEER_DEADLINE=.*/PEER_DEADLINE=40/' " + restore.PreparedDir + "/plan.env"
	for _, n := range []string{"master-0", "master-1"} {
		if r := boxtest.HostRun(t, b, n, short); r.Code != 0 {
			t.Fatalf("shorten the deadlines on %s: %s", n, r)
		}
	}
	before := boxtest.MemberIDs(t, b)
	all := runOn(b, "master-0", "master-1")
	if r := all["master-0"]; r.Code != 3 || !strings.Contains(r.Stdout, "etcd still answers on") || !strings.Contains(r.Stdout, "nothing was changed here") {
		t.Errorf("the recovery host with master-2's etcd running: %s", r)
	}
	if r := all["master-1"]; r.Code != 3 || !strings.Contains(r.Stdout, "master-0 still serves the old etcd cluster") || !strings.Contains(r.Stdout, "putting etcd's data and the static pods back") {
		t.Errorf("the peer whose recovery host never restored: %s", r)
	}
	if err := b.WaitForEtcdMembersAvailable(ctx, "3 members are available"); err != nil {
		t.Fatal(err)
	}
	if after := boxtest.MemberIDs(t, b); len(after) != 3 || after["master-1"] != before["master-1"] {
		t.Errorf("members %v, before %v", after, before)
	}
	if _, err := b.Kube.CoreV1().ConfigMaps("default").Get(ctx, "after-backup", metav1.GetOptions{}); err != nil {
		t.Errorf("the cluster's data after the rollback: %v", err)
	}
	if r := boxtest.HostRun(t, b, "master-0", "ls "+restore.PreparedDir+"/state; test ! -e /var/lib/etcd-backup"); r.Code != 0 || strings.Contains(r.Stdout, "restore-started") {
		t.Errorf("master-0 after it changed nothing: %s", r)
	}
	if r := boxtest.HostRun(t, b, "master-1", "ls /etc/kubernetes/manifests; test -d /var/lib/etcd/member && test ! -e "+restore.PreparedDir+"/etcd-data"); r.Code != 0 || !strings.Contains(r.Stdout, "etcd-pod.yaml\nkube-apiserver-pod.yaml\n") {
		t.Errorf("master-1 after its rollback: %s", r)
	}
}

// A host whose etcd never stops: that peer puts its pods back when its
// containers outlive the stop, the recovery host never restores (etcd still
// answers there), the other peer puts everything back after its deadline.
// The cluster keeps its members and its data.
func TestRestorePreparedRollsBackWhenAHostsEtcdNeverStops(t *testing.T) {
	t.Parallel()
	b, ctx := prepared(t)
	short := "sed -i -e 's/^STOP_TIMEOUT=.*/STOP_TIMEOUT=5/' -e 's/^RECOVERY_DEADLINE=.*/RECOVERY_DEADLINE=20/' -e 's/^PEER_DEADLINE=.*/PEER_DEADLINE=45/' " + restore.PreparedDir + "/plan.env"
	for _, n := range []string{"master-0", "master-1", "master-2"} {
		if r := boxtest.HostRun(t, b, n, short); r.Code != 0 {
			t.Fatalf("shorten the deadlines on %s: %s", n, r)
		}
	}
	before := boxtest.MemberIDs(t, b)
	if err := b.UnstoppableEtcd("master-1", true); err != nil {
		t.Fatal(err)
	}
	all := runOn(b, "master-0", "master-1", "master-2")
	if r := all["master-1"]; r.Code != 3 || !strings.Contains(r.Stdout, "their containers still run after 5s") || !strings.Contains(r.Stdout, "putting etcd's data and the static pods back") {
		t.Errorf("the peer whose etcd does not stop: %s", r)
	}
	if r := all["master-0"]; r.Code != 3 || !strings.Contains(r.Stdout, "etcd still answers on "+b.Node("master-1").IP.String()) || !strings.Contains(r.Stdout, "nothing was changed here") {
		t.Errorf("the recovery host with master-1's etcd running: %s", r)
	}
	if r := all["master-2"]; r.Code != 3 || !strings.Contains(r.Stdout, "master-0 still serves the old etcd cluster") {
		t.Errorf("the peer whose recovery host never restored: %s", r)
	}
	if err := b.UnstoppableEtcd("master-1", false); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitForEtcdMembersAvailable(ctx, "3 members are available"); err != nil {
		t.Fatal(err)
	}
	if after := boxtest.MemberIDs(t, b); len(after) != 3 || after["master-1"] != before["master-1"] || after["master-2"] != before["master-2"] {
		t.Errorf("members %v, before %v", after, before)
	}
	if _, err := b.Kube.CoreV1().ConfigMaps("default").Get(ctx, "after-backup", metav1.GetOptions{}); err != nil {
		t.Errorf("the cluster's data after the rollback: %v", err)
	}
	for _, n := range []string{"master-1", "master-2"} {
		if r := boxtest.HostRun(t, b, n, "ls /etc/kubernetes/manifests; test -d /var/lib/etcd/member"); r.Code != 0 || !strings.Contains(r.Stdout, "etcd-pod.yaml\nkube-apiserver-pod.yaml\nkube-controller-manager-pod.yaml\nkube-scheduler-pod.yaml\n") {
			t.Errorf("%s after its rollback: %s", n, r)
		}
	}
}
