package box

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
)

// StopMachine is a control-plane (or worker) machine going down: its
// instance is "stopped" in the Machine's provider status, the host's units
// and the kubelet stop (and with them every process on the host, the etcd
// member included), and the Node turns NotReady with the unreachable taints
// that the node lifecycle controller would set.
func (b *Box) StopMachine(ctx context.Context, name string) error {
	n := b.Node(name)
	if n == nil {
		return fmt.Errorf("no node %q in the box", name)
	}
	if n.agent != nil {
		n.agent.powerOff()
	}
	n.Kubelet.Stop()
	if err := n.Kubelet.setNodeReady(ctx, false); err != nil {
		return err
	}
	return b.setInstanceState(ctx, n, "stopped")
}

// StartMachine boots a stopped machine again: the kubelet comes back, posts
// Ready and restarts the static pods (etcd included).
func (b *Box) StartMachine(ctx context.Context, name string) error {
	n := b.Node(name)
	if n == nil {
		return fmt.Errorf("no node %q in the box", name)
	}
	if err := b.setInstanceState(ctx, n, "running"); err != nil {
		return err
	}
	if n.agent != nil {
		n.agent.powerOn()
	}
	return n.Kubelet.Start(ctx)
}

func (b *Box) setInstanceState(ctx context.Context, n *Node, state string) error {
	if b.opts.UserProvisioned {
		return nil // no Machine tells the instance's state
	}
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		m, err := b.Machine.MachineV1beta1().Machines("openshift-machine-api").Get(ctx, n.MachineName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		return b.setMachineInstanceState(ctx, m, n, state)
	})
}

// CrashLoopEtcd makes the etcd container of node's etcd pod crash-loop (its
// member down, the pod's etcd container in CrashLoopBackOff with restarts
// counting up), or recover when on is false. The fault lives in the
// member's data dir (a marker file in the host's /var/lib/etcd), as a
// damaged data dir would: moving /var/lib/etcd away, as seeds 003 §2.4.2
// do, takes the fault with it, and a member started afresh runs.
func (b *Box) CrashLoopEtcd(name string, on bool) error {
	n := b.Node(name)
	if n == nil || n.Kubelet == nil || n.Etcd == nil {
		return fmt.Errorf("no control-plane node %q in the box", name)
	}
	return n.Etcd.setCrashLoop(on)
}
