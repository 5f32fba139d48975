package box

import (
	"context"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The kubelet's liveness, as the API shows it.
//
// A real kubelet holds a Lease in kube-node-lease named after its node,
// with a duration of 40 s, and renews it every quarter of that; the node
// lifecycle controller calls a node whose lease stopped changing for its
// grace period (node-monitor-grace-period, 40 s) NotReady. After a whole
// cluster was down, the controller-manager that comes back starts judging
// the nodes from scratch: until the grace period has passed (and, after an
// offline certificate expiry, until its own client certificate has been
// regenerated), the API still shows every node Ready with its heartbeat
// from before the outage.
//
// The box renews the leases while the kubelet service is connected
// (Options.NodeLeaseDuration). A kubelet that boots in the background
// (PowerOn, a restart without certificates) has its node marked NotReady
// by the stand-in for the node lifecycle controller once the API answers:
// at once by default (most tests need not wait for it), or, with
// Options.NodeMonitorGracePeriod, only that long after the API first
// answered it and only if the kubelet has not posted Ready meanwhile, as a
// real cluster does.

// defaultNodeLeaseDuration is the kubelet's lease duration
// (nodeLeaseDurationSeconds).
const defaultNodeLeaseDuration = 40 * time.Second

// kubeletLiveness is a kubelet's part in it.
type kubeletLiveness struct {
	// leaseDuration is the lease's duration; renewals come every quarter.
	leaseDuration time.Duration
	// grace is how long after the API answers a booting kubelet its node
	// is marked NotReady; zero means at once.
	grace time.Duration

	// statusMu orders the node lifecycle controller's NotReady against the
	// kubelet's own Ready, so that a late NotReady never overwrites it.
	statusMu sync.Mutex
	// postedReady is set once the current service has posted its node
	// Ready (guarded by statusMu).
	postedReady bool
}

// renewLease holds the node's lease while ctx (the connected service)
// lives: created if missing, renewed every quarter of its duration.
func (k *FakeKubelet) renewLease(ctx context.Context) {
	d := k.liveness.leaseDuration
	if d <= 0 {
		d = defaultNodeLeaseDuration
	}
	seconds := int32(max(1, d/time.Second))
	leases := k.client.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	renew := func() {
		// A renewal that hangs gives way to the next, as the kubelet's does.
		ctx, cancel := context.WithTimeout(ctx, max(d/4, time.Second))
		defer cancel()
		now := metav1.NewMicroTime(time.Now())
		l, err := leases.Get(ctx, k.Node, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			holder := k.Node
			l = &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: k.Node, Namespace: corev1.NamespaceNodeLease},
				Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &seconds, RenewTime: &now}}
			if node, err := k.client.CoreV1().Nodes().Get(ctx, k.Node, metav1.GetOptions{}); err == nil {
				l.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID}}
			}
			_, _ = leases.Create(ctx, l, metav1.CreateOptions{})
			return
		}
		if err != nil {
			return // the API does not answer: the lease goes stale, as a real one does
		}
		l.Spec.RenewTime, l.Spec.LeaseDurationSeconds = &now, &seconds
		_, _ = leases.Update(ctx, l, metav1.UpdateOptions{})
	}
	renew()
	everyPeriod(ctx, d/4, renew)
}

// postReady posts the node Ready as the kubelet does once connected.
func (k *FakeKubelet) postReady(ctx context.Context) error {
	k.liveness.statusMu.Lock()
	defer k.liveness.statusMu.Unlock()
	if err := k.setNodeReady(ctx, true); err != nil {
		return err
	}
	k.liveness.postedReady = true
	return nil
}

// markNotReadyOnceAnswered is the node lifecycle controller meeting a
// kubelet that booted in the background: it waits until the API answers
// (closing silent then), and marks the node NotReady, at once or after the
// grace period unless the kubelet has posted Ready by then.
func (k *FakeKubelet) markNotReadyOnceAnswered(ctx context.Context, silent chan struct{}) {
	k.liveness.statusMu.Lock()
	k.liveness.postedReady = false
	k.liveness.statusMu.Unlock()
	markNotReady := func() bool {
		k.liveness.statusMu.Lock()
		defer k.liveness.statusMu.Unlock()
		if k.liveness.postedReady {
			return true
		}
		err := k.setNodeReady(ctx, false)
		return err == nil || apierrors.IsNotFound(err)
	}
	if k.liveness.grace <= 0 {
		for ctx.Err() == nil && !markNotReady() {
			sleepCtx(ctx, connectRetryPeriod)
		}
		close(silent)
		return
	}
	for ctx.Err() == nil {
		_, err := k.client.CoreV1().Nodes().Get(ctx, k.Node, metav1.GetOptions{})
		if err == nil || apierrors.IsNotFound(err) {
			break
		}
		sleepCtx(ctx, connectRetryPeriod)
	}
	close(silent)
	go func() {
		if !sleepCtx(ctx, k.liveness.grace) {
			return
		}
		for ctx.Err() == nil && !markNotReady() {
			sleepCtx(ctx, connectRetryPeriod)
		}
	}()
}
