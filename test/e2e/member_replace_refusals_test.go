package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/oc-recover/oc-recover/pkg/backup"
	"github.com/oc-recover/oc-recover/test/box"
	"github.com/oc-recover/oc-recover/test/internal/boxtest"
)

// clusterState is what a refused replacement must leave exactly as it was:
// the etcd membership as etcd reports it (IDs, names, URLs), the members'
// secrets, the Machines and etcd/cluster's spec and annotations.
func clusterState(t *testing.T, b *box.Box) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	lines := []string{membership(t, b)}
	secrets, err := b.Kube.CoreV1().Secrets("openshift-etcd").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets.Items {
		lines = append(lines, fmt.Sprintf("secret %s uid=%s", s.Name, s.UID))
	}
	machines, err := b.Machine.MachineV1beta1().Machines("openshift-machine-api").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range machines.Items {
		lines = append(lines, fmt.Sprintf("machine %s uid=%s generation=%d", m.Name, m.UID, m.Generation))
	}
	etcd, err := b.Operator.OperatorV1().Etcds().Get(ctx, "cluster", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	spec, _ := json.Marshal(etcd.Spec)
	lines = append(lines, "etcd spec "+string(spec), fmt.Sprintf("etcd annotations %v", etcd.Annotations))
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// membership is the etcd membership as a member reports it (serializable:
// it answers without quorum too).
func membership(t *testing.T, b *box.Box) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cli, err := b.EtcdClient()
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	list, err := cli.MemberList(ctx, clientv3.WithSerializable())
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, m := range list.Members {
		lines = append(lines, fmt.Sprintf("member %x name=%s peers=%v clients=%v learner=%v", m.ID, m.Name, m.PeerURLs, m.ClientURLs, m.IsLearner))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// refuse runs a replacement that must be refused with code and a message
// containing want, and checks that nothing changed.
func refuse(t *testing.T, b *box.Box, code int, want string, args ...string) {
	t.Helper()
	before := clusterState(t, b)
	r := tools.Run(t, b, "", "kubectl-recover", append([]string{"member", "replace"}, args...)...)
	if r.Code != code || !strings.Contains(r.Stdout+r.Stderr, want) {
		t.Errorf("member replace %v: want exit %d saying %q:\n%s", args, code, want, r)
	}
	if after := clusterState(t, b); after != before {
		t.Errorf("member replace %v changed the cluster:\nbefore:\n%s\nafter:\n%s", args, before, after)
	}
}

// On a healthy cluster there is nothing to replace, and bad arguments are
// usage errors; nothing changes.
func TestMemberReplaceRefusesOnAHealthyCluster(t *testing.T) {
	refuse(t, shared, 1, "is healthy as etcd reports it", "master-0", "--force")
	refuse(t, shared, 2, "not a control-plane node", "worker-0", "--force")
	refuse(t, shared, 2, `there is no node "master-9"`, "master-9", "--force")
	refuse(t, shared, 2, "name the control-plane node", "--force")
	refuse(t, shared, 2, "--max-backup-age must be positive", "master-0", "--max-backup-age", "0s")
	refuse(t, shared, 2, "not a hexadecimal etcd member ID", "master-0", "--member-id", "zz-top")
}

// With a member down, every guard holds: an etcd member that matches no
// node, no backup, a backup too old, a member ID that no longer matches, a
// removal that would lose quorum, a Machine that cannot be found, and
// quorum lost. The dry run shows the plan and changes nothing.
func TestMemberReplaceRefusals(t *testing.T) {
	t.Parallel()
	b := boxtest.StartBox(t, box.Options{})
	ctx := context.Background()
	backups := t.TempDir()
	if r := tools.Run(t, b, "", "kubectl-recover", "backup", "--output-dir", filepath.Join(backups, "b1")); r.Code != 0 {
		t.Fatalf("backup: %s", r)
	}
	// An etcd member that matches no node (a learner nobody started, added while
	// every member is up: etcd refuses a reconfiguration otherwise): it is
	// reported, and nothing is replaced until someone looks at it.
	cli, err := b.EtcdClient()
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	added, err := cli.MemberAddAsLearner(ctx, []string{"https://192.0.2.10:2380"})
	if err != nil {
		t.Fatal(err)
	}
	refuse(t, b, 1, "members that match no control-plane node ("+hexID(added.Member.ID), "master-0", "--force")
	if _, err := cli.MemberRemove(ctx, added.Member.ID); err != nil {
		t.Fatal(err)
	}

	boxtest.StopMachineAndWait(t, b, "master-0")

	refuse(t, b, 1, "no backup of cluster", "master-0", "--backup-dir", t.TempDir())
	// The same backup, made two days old.
	m, err := backup.ReadManifest(filepath.Join(backups, "b1"))
	if err != nil {
		t.Fatal(err)
	}
	m.StartedAt = m.StartedAt.Add(-48 * time.Hour)
	if err := backup.WriteManifest(filepath.Join(backups, "b1"), m); err != nil {
		t.Fatal(err)
	}
	refuse(t, b, 1, "no backup of cluster", "master-0", "--backup-dir", backups)
	refuse(t, b, 1, "does not match the member named master-0", "master-0", "--backup-dir", backups, "--max-backup-age", "72h", "--member-id", "abc123")

	// The dry run: the plan, nothing changed.
	before := clusterState(t, b)
	r := tools.Run(t, b, "", "kubectl-recover", "member", "replace", "master-0", "--backup-dir", backups, "--max-backup-age", "72h", "--dry-run")
	if r.Code != 0 {
		t.Fatalf("dry run: %s", r)
	}
	for _, want := range []string{"Plan (dry run, nothing changed):", "MachineNotRunning", "etcd member remove", "delete secret -n openshift-etcd etcd-peer-master-0 etcd-serving-master-0 etcd-serving-metrics-master-0",
		"useUnsupportedUnsafeNonHANonProductionUnstableEtcd", "delete machine -n openshift-machine-api " + b.InfraID + "-master-0", "create machine -n openshift-machine-api " + b.InfraID + "-master-3", "wait for phase Running"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("dry run does not show %q:\n%s", want, r)
		}
	}
	if after := clusterState(t, b); after != before {
		t.Errorf("the dry run changed the cluster:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	// On a terminal it asks first; anything but yes changes nothing.
	r = runOnTerminal(t, b, "no\n", "member", "replace", "master-0", "--backup-dir", backups, "--max-backup-age", "72h")
	if r.Code != 1 || !strings.Contains(r.Stdout, "Replace the etcd member of master-0?") || !strings.Contains(r.Stdout, "not confirmed; nothing changed") {
		t.Errorf("member replace on a terminal, answered no: %s", r)
	}
	if after := clusterState(t, b); after != before {
		t.Errorf("answering no changed the cluster:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	// master-1's kubelet stops: its Node turns NotReady while its etcd
	// member still serves. With master-0's member down, removing master-1's
	// would leave one healthy member of two: refused.
	if err := b.Node("master-1").Kubelet.StopService(ctx); err != nil {
		t.Fatal(err)
	}
	refuse(t, b, 1, "removing the member of master-1 would lose quorum", "master-1", "--force")
	if err := b.Node("master-1").Kubelet.StartService(ctx); err != nil {
		t.Fatal(err)
	}

	// A Machine API cluster where no Machine points at the node.
	machine, err := b.Machine.MachineV1beta1().Machines("openshift-machine-api").Get(ctx, b.InfraID+"-master-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	machine.Status.NodeRef.Name = "elsewhere"
	if _, err := b.Machine.MachineV1beta1().Machines("openshift-machine-api").UpdateStatus(ctx, machine, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	refuse(t, b, 1, "no Machine has node master-0", "master-0", "--force")

	// A second member down: quorum is lost. The API server cannot read
	// etcd any more, so the plugin cannot either: it says so and points to
	// a restore, and the membership (read from a member that is still up)
	// is unchanged.
	before = membership(t, b)
	stopCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	_ = b.StopMachine(stopCtx, "master-1") // its Node update fails without quorum
	cancel()
	r = tools.Run(t, b, "", "kubectl-recover", "member", "replace", "master-0", "--force", "--timeout", "60s")
	if r.Code != 1 || !strings.Contains(r.Stderr, "restore the cluster from a backup") {
		t.Errorf("member replace without quorum: want exit 1 pointing to a restore:\n%s", r)
	}
	if after := membership(t, b); after != before {
		t.Errorf("member replace without quorum changed the membership:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// Five members, two of them down: quorum holds, but the replacement is
// refused — the redeployment that follows restarts each member in turn.
func TestMemberReplaceRefusesWithTwoUnhealthyMembers(t *testing.T) {
	t.Parallel()
	b := boxtest.StartBox(t, box.Options{Masters: 5})
	ctx := context.Background()
	for _, n := range []string{"master-3", "master-4"} {
		if err := b.StopMachine(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.WaitForEtcdMembersAvailable(ctx, "3 of 5 members are available, master-3 is unhealthy, master-4 is unhealthy"); err != nil {
		t.Fatal(err)
	}
	refuse(t, b, 1, "the members of master-4 are unhealthy", "master-3", "--force")
}
