package boxtest

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/oc-recover/oc-recover/test/box"
)

// NodeReady is the status of n's Ready condition, "" where it has none.
func NodeReady(n *corev1.Node) corev1.ConditionStatus {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status
		}
	}
	return ""
}

// AssertNodeReady waits, with a bound, for the node's Ready condition to
// be want: the kubelet reports a change a moment after it happens.
func AssertNodeReady(t testing.TB, b *box.Box, name string, want corev1.ConditionStatus) {
	t.Helper()
	err := box.WaitFor(context.Background(), time.Minute, name+" Ready="+string(want), func(ctx context.Context) (bool, string, error) {
		node, err := b.Kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		return NodeReady(node) == want, "Ready=" + string(NodeReady(node)), nil
	})
	if err != nil {
		t.Error(err)
	}
}

// PodReady says whether p's Ready condition is True.
func PodReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// MemberIDs is the box's etcd member list, as `etcdctl member list` shows
// it: each member's ID by its name (the node's).
func MemberIDs(t testing.TB, b *box.Box) map[string]uint64 {
	t.Helper()
	cli, err := b.EtcdClient()
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	list, err := cli.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]uint64{}
	for _, m := range list.Members {
		ids[m.Name] = m.ID
	}
	return ids
}

// StopMachineAndWait stops node's machine and waits until the etcd operator
// reports its member unhealthy: the state a recovery starts from.
func StopMachineAndWait(t testing.TB, b *box.Box, node string) {
	t.Helper()
	ctx := context.Background()
	if err := b.StopMachine(ctx, node); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitForEtcdMembersAvailable(ctx, "2 of 3 members are available, "+node+" is unhealthy"); err != nil {
		t.Fatal(err)
	}
}
