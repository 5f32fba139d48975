package box

import (
	"context"
	"fmt"
	"time"

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
	b.powerDown(n)
	return b.reportStopped(ctx, n)
}

// powerDown is the machine going down: its units, kubelet and containers
// (the etcd member included) stop.
func (b *Box) powerDown(n *Node) {
	if n.agent != nil {
		n.agent.powerOff()
	}
	n.Kubelet.Stop()
}

// reportStopped is what the cluster learns of a machine that went down:
// the node lifecycle controller marks the Node NotReady and unreachable,
// and the cloud reports the instance stopped in its Machine. Neither can be
// written while the API does not answer (the last control-plane hosts of a
// cluster shutting down).
func (b *Box) reportStopped(ctx context.Context, n *Node) error {
	if err := n.Kubelet.setNodeReady(ctx, false); err != nil {
		return err
	}
	return b.setInstanceState(ctx, n, "stopped")
}

// StartMachine boots a stopped machine again: the kubelet comes back, posts
// Ready and restarts the static pods (etcd included). With
// Options.NodeCSRsOnBoot the kubelet's certificates have expired: the node
// stays NotReady until its CSRs are approved.
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
	if b.opts.NodeCSRsOnBoot {
		n.Kubelet.ExpireCertificates()
	}
	return n.Kubelet.Start(ctx)
}

// PowerOn is the administrator starting the machines of a cluster that was
// shut down (OpenShift 4.5 documentation, Backup and restore, 4.2
// "Restarting the cluster", step 2), all of them when names is empty. Each
// host boots: its kubelet runs the static pods (the etcd members, which
// bring the API back once a quorum runs) and connects to the API in the
// background, through CSRs when its certificates expired (see
// Options.NodeCSRsOnBoot and ExpireKubeletCertificates). PowerOn returns
// once the API answers and shows the cluster as it is, which OpenShift's
// documentation waits ten minutes for: every booting node NotReady until its
// kubelet connects, the Machines' instances running, the kube-apiserver's
// failing certificate rotations (Options.CertRegeneration), the cluster
// operators affected by the nodes being down. With
// Options.NodeMonitorGracePeriod it returns once the API answers, every
// node still showing its status from before. ctx bounds the wait.
func (b *Box) PowerOn(ctx context.Context, names ...string) error {
	if len(names) == 0 {
		for _, n := range b.NodeList() {
			names = append(names, n.Name)
		}
	}
	var nodes []*Node
	for _, name := range names {
		n := b.Node(name)
		if n == nil {
			return fmt.Errorf("no node %q in the box", name)
		}
		nodes = append(nodes, n)
	}
	for _, n := range nodes {
		if n.agent != nil {
			n.agent.powerOn()
		}
		if b.opts.NodeCSRsOnBoot {
			n.Kubelet.ExpireCertificates()
		}
		if err := n.Kubelet.Boot(ctx); err != nil {
			return err
		}
	}
	for _, n := range nodes {
		if err := n.Kubelet.awaitSilent(ctx); err != nil {
			return err
		}
		for {
			err := b.setInstanceState(ctx, n, "running")
			if err == nil {
				break
			}
			if !sleepCtx(ctx, connectRetryPeriod) {
				return fmt.Errorf("machine of %s: %w", n.Name, err)
			}
		}
	}
	for {
		err := b.resumeCertRegeneration(ctx)
		if err == nil {
			break
		}
		if !sleepCtx(ctx, connectRetryPeriod) {
			return fmt.Errorf("cert-regeneration controller: %w", err)
		}
	}
	for {
		err := b.operators.syncNow(ctx)
		if err == nil {
			return nil
		}
		if !sleepCtx(ctx, connectRetryPeriod) {
			return fmt.Errorf("cluster operators: %w", err)
		}
	}
}

// ScheduledShutdown reports whether a shutdown (or reboot) is scheduled on
// node's host, and when it happens.
func (b *Box) ScheduledShutdown(name string) (time.Time, bool) {
	n := b.Node(name)
	if n == nil || n.agent == nil {
		return time.Time{}, false
	}
	n.agent.mu.Lock()
	defer n.agent.mu.Unlock()
	if n.agent.shutdown == nil {
		return time.Time{}, false
	}
	return n.agent.shutdown.at, true
}

// MachineOn reports whether node's machine is powered on.
func (b *Box) MachineOn(name string) bool {
	n := b.Node(name)
	return n != nil && n.agent != nil && n.agent.isOn()
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
// damaged data dir would: moving /var/lib/etcd away, as the OpenShift 4.5
// documentation, Backup and restore, 2.4.2 does, takes the fault with it,
// and a member started afresh runs.
func (b *Box) CrashLoopEtcd(name string, on bool) error {
	n := b.Node(name)
	if n == nil || n.Kubelet == nil || n.Etcd == nil {
		return fmt.Errorf("no control-plane node %q in the box", name)
	}
	return n.Etcd.setCrashLoop(on)
}

// UnstoppableEtcd makes the containers of node's etcd pod ignore their
// stop (on) or obey it again (off): with its manifest moved out of the
// manifests directory the member keeps serving and crictl keeps listing
// them, as with a process stuck in the kernel, until the fault is lifted
// and the kubelet stops them.
func (b *Box) UnstoppableEtcd(name string, on bool) error {
	n := b.Node(name)
	if n == nil || n.Kubelet == nil || n.Etcd == nil {
		return fmt.Errorf("no control-plane node %q in the box", name)
	}
	n.Kubelet.unstoppableEtcd.Store(on)
	return nil
}

// RefuseTransientUnits makes systemd-run on node fail (on) as it does when
// PID 1 does not answer on D-Bus in time, or work again (off).
func (b *Box) RefuseTransientUnits(name string, on bool) error {
	n := b.Node(name)
	if n == nil || n.agent == nil {
		return fmt.Errorf("no host %q in the box", name)
	}
	n.agent.mu.Lock()
	n.agent.refuseUnits = on
	n.agent.mu.Unlock()
	return nil
}

// CrashLoopKubeAPIServer makes the kube-apiserver container of node's
// static pod exit as soon as it starts (on), as when its configuration or
// certificates are broken, or run again (off). While no host runs one the
// API does not answer; the host's own endpoint (https://<ip>:6443) is
// down meanwhile.
func (b *Box) CrashLoopKubeAPIServer(name string, on bool) error {
	n := b.Node(name)
	if n == nil || n.Kubelet == nil || !n.Master {
		return fmt.Errorf("no control-plane node %q in the box", name)
	}
	n.Kubelet.crashingKubeAPIServer.Store(on)
	return nil
}
