package e2e

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/oc-recover/oc-recover/test/box"
	"github.com/oc-recover/oc-recover/test/internal/boxtest"
)

func TestRedeployRollsANewRevisionToEveryNode(t *testing.T) {
	t.Parallel()
	b := boxtest.StartBox(t, box.Options{})
	ctx := context.Background()

	r := tools.Run(t, b, "", "kubectl-recover", "redeploy", "etcd")
	mixed := regexp.MustCompile(`etcd: \d nodes? (is|are) at revision 3; \d nodes? (is|are) at revision 4 \(latest revision 4\)`)
	if r.Code != 0 || !mixed.MatchString(r.Stdout) ||
		!strings.Contains(r.Stdout, "etcd: every node at revision 4 (was 3 nodes are at revision 3)") {
		t.Fatalf("redeploy etcd: %s", r)
	}
	etcd, err := b.Operator.OperatorV1().Etcds().Get(ctx, "cluster", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(etcd.Spec.ForceRedeploymentReason, "recovery-") || etcd.Status.LatestAvailableRevision != 4 {
		t.Errorf("etcd/cluster: reason %q, latest %d", etcd.Spec.ForceRedeploymentReason, etcd.Status.LatestAvailableRevision)
	}
	for _, c := range etcd.Status.Conditions {
		if c.Type == "NodeInstallerProgressing" && (c.Status != "False" || c.Reason != "AllNodesAtLatestRevision" || c.Message != "3 nodes are at revision 4") {
			t.Errorf("NodeInstallerProgressing = %+v", c)
		}
	}
	for _, n := range []string{"master-0", "master-1", "master-2"} {
		manifest, err := os.ReadFile(filepath.Join(b.Node(n).Sandbox.Root, "etc/kubernetes/static-pod-resources/etcd-pod-4/etcd-pod.yaml"))
		if err != nil || !strings.Contains(string(manifest), `revision: "4"`) {
			t.Errorf("%s: revision 4 not installed: %v", n, err)
		}
	}
	if err := b.WaitForEtcdMembersAvailable(ctx, "3 members are available"); err != nil {
		t.Error(err)
	}

	// --dry-run shows the patches and changes nothing.
	r = tools.Run(t, b, "", "kubectl-recover", "redeploy", "control-plane", "--dry-run")
	if r.Code != 0 || strings.Count(r.Stdout, `merge-patch`) != 4 || !strings.Contains(r.Stdout, `{"spec":{"forceRedeploymentReason":"recovery-`) {
		t.Errorf("redeploy control-plane --dry-run: %s", r)
	}
	kas, _ := b.Operator.OperatorV1().KubeAPIServers().Get(ctx, "cluster", metav1.GetOptions{})
	if kas.Spec.ForceRedeploymentReason != "" || kas.Status.LatestAvailableRevision != 7 {
		t.Errorf("--dry-run changed kubeapiserver/cluster: %q %d", kas.Spec.ForceRedeploymentReason, kas.Status.LatestAvailableRevision)
	}
	for _, args := range [][]string{{"redeploy"}, {"redeploy", "openshift-apiserver"}} {
		if r := tools.Run(t, b, "", "kubectl-recover", args...); r.Code != 2 {
			t.Errorf("%v: want exit 2: %s", args, r)
		}
	}

	// A stopped node holds the rollout back: redeploy times out and says
	// where it stands; once the node is back, a re-run finishes that rollout
	// instead of starting another. The timeout leaves the two running
	// nodes ample time to install the revision however loaded the machine.
	if err := b.StopMachine(ctx, "master-2"); err != nil {
		t.Fatal(err)
	}
	r = tools.Run(t, b, "", "kubectl-recover", "redeploy", "kube-scheduler", "--timeout", "30s")
	if r.Code != 1 || !strings.Contains(r.Stderr, "1 node is at revision 6; 2 nodes are at revision 7") || !strings.Contains(r.Stderr, "--timeout") {
		t.Fatalf("redeploy with a stopped node: %s", r)
	}
	if err := b.StartMachine(ctx, "master-2"); err != nil {
		t.Fatal(err)
	}
	r = tools.Run(t, b, "", "kubectl-recover", "redeploy", "kube-scheduler")
	if r.Code != 0 || !strings.Contains(r.Stdout, "kube-scheduler: every node at revision 7") {
		t.Errorf("re-run after the node came back: %s", r)
	}
}

// With two healthy members the etcd operator rolls out nothing: a rollout
// restarts members one by one and would lose quorum. The unsupported
// override lifts that guard (OpenShift 4.12 documentation, Backup and
// restore, 5.4.2 "Restoring to a previous cluster state"), and the revision
// then reaches the nodes that run.
func TestEtcdRolloutWaitsForThreeHealthyMembersUnlessOverridden(t *testing.T) {
	t.Parallel()
	b := boxtest.StartBox(t, box.Options{})
	ctx := context.Background()
	boxtest.StopMachineAndWait(t, b, "master-1")
	r := tools.Run(t, b, "", "kubectl-recover", "redeploy", "etcd", "--timeout", "4s")
	if r.Code != 1 || !strings.Contains(r.Stderr, "3 nodes are at revision 3") {
		t.Fatalf("redeploy etcd with two healthy members: %s", r)
	}
	etcd, err := b.Operator.OperatorV1().Etcds().Get(ctx, "cluster", metav1.GetOptions{})
	if err != nil || etcd.Status.LatestAvailableRevision != 3 {
		t.Fatalf("the quorum guard let a revision through: latest %d (%v)", etcd.Status.LatestAvailableRevision, err)
	}
	r = tools.Run(t, b, "", "kubectl", "patch", "etcd/cluster", "--type=merge", "-p",
		`{"spec":{"unsupportedConfigOverrides":{"useUnsupportedUnsafeNonHANonProductionUnstableEtcd":true}}}`)
	if r.Code != 0 {
		t.Fatalf("set the override: %s", r)
	}
	// master-1 is still down, so the rollout cannot finish, but it starts:
	// the installer, going node by node, brings master-0 to the new
	// revision and waits at master-1.
	r = tools.Run(t, b, "", "kubectl-recover", "redeploy", "etcd", "--timeout", "8s")
	if r.Code != 1 || !strings.Contains(r.Stderr, "2 nodes are at revision 3; 1 node is at revision 4 (latest revision 4)") {
		t.Errorf("redeploy etcd with the override: %s", r)
	}
}

// On a terminal, redeploy asks first; "no" patches nothing.
func TestRedeployAsksOnATerminalAndChangesNothingWithoutYes(t *testing.T) {
	ctx := context.Background()
	before, err := shared.Operator.OperatorV1().Etcds().Get(ctx, "cluster", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r := runOnTerminal(t, shared, "no\n", "redeploy", "etcd")
	if r.Code != 1 || !strings.Contains(r.Stdout, "Redeploy [etcd] on every control-plane node? [y/N]") || !strings.Contains(r.Stdout, "not confirmed; nothing changed") {
		t.Fatalf("redeploy answered no: %s", r)
	}
	after, err := shared.Operator.OperatorV1().Etcds().Get(ctx, "cluster", metav1.GetOptions{})
	if err != nil || after.Spec.ForceRedeploymentReason != before.Spec.ForceRedeploymentReason || after.Generation != before.Generation {
		t.Errorf("redeploy answered no, yet etcd/cluster changed: reason %q→%q generation %d→%d (%v)",
			before.Spec.ForceRedeploymentReason, after.Spec.ForceRedeploymentReason, before.Generation, after.Generation, err)
	}
}
