package csr

import (
	"context"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// The post-outage rule (SPEC, `csr approve`: "after an outage or a restore,
// a Ready condition whose heartbeat predates the outage is stale: that node
// counts as not Ready").
//
// Right after a cluster comes back, the API still shows every node as it
// was before the outage: Ready=True, with a heartbeat from before it. Only
// the node lifecycle controller turns that into Unknown, once the
// controller-manager runs again and a kubelet has been silent for its grace
// period, and after an offline certificate expiry the controller-manager
// itself waits for its own client certificate to be regenerated. Until
// then a kubelet whose certificate expired looks Ready, and the rule that
// stops a node takeover (a bootstrapper CSR naming a Ready node is refused)
// would refuse the very CSR the documentation says to approve.
//
// PostOutage judges liveness the way the node lifecycle controller does: by
// watching. A live kubelet renews its Lease (kube-node-lease/<node>) every
// quarter of the lease's duration (10 s of 40 s), and writes its Ready
// heartbeat at least every five minutes. A node whose lease renewal and
// heartbeat have not changed while this run watched it for longer than the
// lease's duration has a kubelet that is not talking to the API: its Ready
// is stale, and it counts as not Ready.
//
// Why watching and not timestamps: the times in a lease and a heartbeat are
// the kubelet's clock, and after an outage clocks are exactly what is in
// doubt (a wrong clock gives the same x509 errors as an expired
// certificate); comparing them with this machine's clock would, with a
// clock ahead, call every live node stale and open the takeover the rule
// exists to stop. Nor is there an outage start to compare with: the times
// the kube-apiserver pods started are in their mirror pods' status, which
// the kubelets with expired certificates cannot update, so it would read
// as the time before the outage. Watching needs only this run's own
// monotonic clock, and can only err towards "Ready" (a node is never
// called stale before it has been silent for a whole lease duration). The
// cost: a stale node counts as not Ready only after that long of watching,
// and a dry run, which looks once, counts every such node Ready.

// DefaultNodeGrace is how long a kubelet may go without renewing its lease
// before its Ready counts as stale, when the lease names no duration: the
// kubelet's lease duration (40 s), which is also the node lifecycle
// controller's node-monitor-grace-period up to Kubernetes 1.31.
const DefaultNodeGrace = 40 * time.Second

// NodeLeaseNamespace holds the kubelets' leases, one per node, by its name.
const NodeLeaseNamespace = corev1.NamespaceNodeLease

// StaleReason is the reason of the Ready condition PostOutage puts on a
// node it counts as not Ready, in the copy of the nodes it returns.
const StaleReason = "StaleAfterOutage"

// PostOutage is the post-outage rule over a run's rounds: it remembers, for
// each node, when this run first saw its kubelet's latest sign of life.
// Its zero value is ready to use; it is not safe for concurrent use.
type PostOutage struct {
	// Now reads the clock; nil means time.Now. Only the time between two
	// readings matters.
	Now func() time.Time

	seen map[string]sighting
}

// sighting is a node's latest sign of life, and when this run first saw it.
type sighting struct {
	sign  string
	since time.Time
}

// Apply returns a copy of nodes in which the Ready condition of every node
// it judges stale says Unknown, with reason StaleReason and a message that
// says why, and the names of those nodes with the message. leases are the
// leases of kube-node-lease as just read; call it once a round. nodes is
// not changed.
func (p *PostOutage) Apply(nodes []corev1.Node, leases []coordinationv1.Lease) ([]corev1.Node, map[string]string) {
	now := time.Now()
	if p.Now != nil {
		now = p.Now()
	}
	byName := make(map[string]*coordinationv1.Lease, len(leases))
	for i := range leases {
		byName[leases[i].Name] = &leases[i]
	}
	if p.seen == nil {
		p.seen = map[string]sighting{}
	}
	out := make([]corev1.Node, len(nodes))
	stale := map[string]string{}
	present := map[string]bool{}
	for i := range nodes {
		out[i] = nodes[i]
		n := &nodes[i]
		present[n.Name] = true
		lease := byName[n.Name]
		sign, renewed, grace := signOfLife(n, lease)
		s, ok := p.seen[n.Name]
		if !ok || s.sign != sign {
			s = sighting{sign: sign, since: now}
			p.seen[n.Name] = s
		}
		ready := readyCondition(n)
		if ready == nil || ready.Status != corev1.ConditionTrue {
			continue
		}
		watched := now.Sub(s.since)
		if watched <= grace {
			continue
		}
		why := fmt.Sprintf("its Ready=True is stale: its kubelet has not %s while oc-recover watched for %s, longer than the lease's %s (last Ready heartbeat %s), so it is not talking to the API; the node lifecycle controller has not marked it yet",
			renewed, watched.Truncate(100*time.Millisecond), grace, stamp(ready.LastHeartbeatTime))
		stale[n.Name] = why
		node := n.DeepCopy()
		for j := range node.Status.Conditions {
			if c := &node.Status.Conditions[j]; c.Type == corev1.NodeReady {
				c.Status, c.Reason, c.Message = corev1.ConditionUnknown, StaleReason, why
			}
		}
		out[i] = *node
	}
	for name := range p.seen {
		if !present[name] {
			delete(p.seen, name)
		}
	}
	return out, stale
}

// signOfLife is what a live kubelet keeps changing: its lease's renewal
// and its Ready heartbeat (and the lease's holder, should another kubelet
// take it). It also says what the kubelet has not done, and how long it
// may go without: the lease's duration, else DefaultNodeGrace.
func signOfLife(n *corev1.Node, lease *coordinationv1.Lease) (sign, renewed string, grace time.Duration) {
	grace = DefaultNodeGrace
	heartbeat := ""
	if c := readyCondition(n); c != nil {
		heartbeat = stamp(c.LastHeartbeatTime)
	}
	if lease == nil {
		return "no lease|" + heartbeat, fmt.Sprintf("created its lease %s/%s", NodeLeaseNamespace, n.Name), grace
	}
	if d := lease.Spec.LeaseDurationSeconds; d != nil && *d > 0 {
		grace = time.Duration(*d) * time.Second
	}
	holder, renew := "", "never"
	if lease.Spec.HolderIdentity != nil {
		holder = *lease.Spec.HolderIdentity
	}
	if lease.Spec.RenewTime != nil {
		renew = lease.Spec.RenewTime.UTC().Format(time.RFC3339Nano)
	}
	return holder + "|" + renew + "|" + heartbeat,
		fmt.Sprintf("renewed its lease %s/%s (last renewed %s)", NodeLeaseNamespace, n.Name, renew), grace
}

func readyCondition(n *corev1.Node) *corev1.NodeCondition {
	for i := range n.Status.Conditions {
		if n.Status.Conditions[i].Type == corev1.NodeReady {
			return &n.Status.Conditions[i]
		}
	}
	return nil
}

func stamp(t metav1.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}

// ReadNodeLeases lists the kubelets' leases. A caller that cannot read
// them must not apply the rule: without leases every node would look
// silent.
func ReadNodeLeases(ctx context.Context, kube kubernetes.Interface) ([]coordinationv1.Lease, error) {
	list, err := kube.CoordinationV1().Leases(NodeLeaseNamespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list the kubelets' leases in %s: %w", NodeLeaseNamespace, err)
	}
	return list.Items, nil
}
