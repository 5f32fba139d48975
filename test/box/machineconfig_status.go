package box

import (
	"context"
	"fmt"
	"strings"

	mcfgv1 "github.com/openshift/api/machineconfiguration/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
)

// DegradePool makes the first node (by name) of the machine config pool
// name report Degraded with message as the reason, as its machine-config
// daemon does when it cannot apply or validate its configuration (say,
// "unexpected on-disk state validating against rendered-master-...").
// The MCO's node controller then reports the pool NodeDegraded and
// Degraded with that node's message, one degraded and one unavailable
// machine, and the pool no longer Updated. An empty message clears every
// degraded node of the pool. The fault lives in the Node's annotations,
// as on a cluster: nothing in the box resets it, and a Node that is
// deleted takes it along.
func (b *Box) DegradePool(ctx context.Context, name, message string) error {
	o := b.mco
	o.syncMu.Lock()
	defer o.syncMu.Unlock()
	if _, ok := o.rendered[name]; !ok {
		return fmt.Errorf("no machine config pool %q in the box (it has %v)", name, machineConfigPools)
	}
	nodes, err := o.hostNodes(ctx)
	if err != nil {
		return err
	}
	members := poolNodes(nodes)[name]
	for i, n := range members {
		state := n.Annotations[mcdState]
		ann := map[string]string{mcdState: mcdStateDone, mcdReason: ""}
		switch {
		case message != "" && i == 0:
			ann = map[string]string{mcdState: mcdStateDegraded, mcdReason: message}
		case state != mcdStateDegraded && state != mcdStateUnreconcilable:
			continue
		}
		// A daemon reports on a node it has configured.
		for _, k := range []string{mcdCurrentConfig, mcdDesiredConfig} {
			if n.Annotations[k] == "" {
				ann[k] = o.rendered[name]
			}
		}
		if _, err := o.annotate(ctx, n.Name, ann); err != nil {
			return err
		}
	}
	if message != "" && len(members) == 0 {
		return fmt.Errorf("machine config pool %q has no nodes to degrade", name)
	}
	return o.syncLocked(ctx)
}

// writeStatus writes the status the node controller computes for pool
// from its nodes, if it changed.
func (o *machineConfigOperator) writeStatus(ctx context.Context, pool string, nodes []*corev1.Node) error {
	api := o.client.MachineconfigurationV1().MachineConfigPools()
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		mcp, err := api.Get(ctx, pool, metav1.GetOptions{})
		if err != nil {
			return err
		}
		st := poolStatus(mcp, nodes)
		if equality.Semantic.DeepEqual(mcp.Status, st) {
			return nil
		}
		mcp.Status = st
		_, err = api.UpdateStatus(ctx, mcp, metav1.UpdateOptions{})
		return err
	})
}

// poolStatus is the MCO node controller's account of a pool: a node is
// updated when its daemon is Done at the pool's config, ready when also
// schedulable and Ready, unavailable when not ready or (not updated and
// not failing an update), degraded when its daemon says Degraded or
// Unreconcilable. The pool is Updated only when every machine is updated,
// ready and available, and Updating otherwise unless paused;
// NodeDegraded names each degraded node's reason and Degraded follows
// NodeDegraded or RenderDegraded.
func poolStatus(pool *mcfgv1.MachineConfigPool, nodes []*corev1.Node) mcfgv1.MachineConfigPoolStatus {
	target := pool.Spec.Configuration.Name
	var updated, ready, unavailable, degraded int32
	var reasons []string
	for _, n := range nodes {
		cur, des, state := n.Annotations[mcdCurrentConfig], n.Annotations[mcdDesiredConfig], n.Annotations[mcdState]
		done := cur == target && des == target && state == mcdStateDone
		isDegraded := des != "" && (state == mcdStateDegraded || state == mcdStateUnreconcilable)
		schedulable := nodeSchedulable(n)
		if done {
			updated++
			if schedulable {
				ready++
			}
		}
		// A daemon that failed to move to another config may be given
		// yet another: its node does not count as busy.
		failing := isDegraded && cur != des
		if !schedulable || (!done && !failing) {
			unavailable++
		}
		if isDegraded {
			degraded++
			if r := n.Annotations[mcdReason]; r != "" {
				reasons = append(reasons, fmt.Sprintf("Node %s is reporting: %q", n.Name, r))
			}
		}
	}
	machines := int32(len(nodes))
	st := mcfgv1.MachineConfigPoolStatus{
		ObservedGeneration: pool.Generation, Configuration: pool.Status.Configuration,
		MachineCount: machines, UpdatedMachineCount: updated, ReadyMachineCount: ready,
		UnavailableMachineCount: unavailable, DegradedMachineCount: degraded,
		Conditions:  append([]mcfgv1.MachineConfigPoolCondition{}, pool.Status.Conditions...),
		CertExpirys: pool.Status.CertExpirys,
	}
	if st.CertExpirys == nil {
		st.CertExpirys = []mcfgv1.CertExpiry{}
	}
	// The render controller's condition: the box's configs always render.
	if findPoolCondition(st.Conditions, mcfgv1.MachineConfigPoolRenderDegraded) == nil {
		setPoolCondition(&st, mcfgv1.MachineConfigPoolRenderDegraded, corev1.ConditionFalse, "", "")
	}
	line := "MachineConfig " + target
	switch {
	case updated == machines && ready == machines && unavailable == 0:
		setPoolCondition(&st, mcfgv1.MachineConfigPoolUpdated, corev1.ConditionTrue, "", "All nodes are updated with "+line)
		setPoolCondition(&st, mcfgv1.MachineConfigPoolUpdating, corev1.ConditionFalse, "", "")
		st.Configuration = pool.Spec.Configuration
	case pool.Spec.Paused:
		setPoolCondition(&st, mcfgv1.MachineConfigPoolUpdated, corev1.ConditionFalse, "", "")
		setPoolCondition(&st, mcfgv1.MachineConfigPoolUpdating, corev1.ConditionFalse, "", "Pool is paused; will not update to "+line)
	default:
		setPoolCondition(&st, mcfgv1.MachineConfigPoolUpdated, corev1.ConditionFalse, "", "")
		setPoolCondition(&st, mcfgv1.MachineConfigPoolUpdating, corev1.ConditionTrue, "", "All nodes are updating to "+line)
	}
	nodeMessage := ""
	if degraded > 0 {
		nodeMessage = strings.Join(reasons, ", ")
		setPoolCondition(&st, mcfgv1.MachineConfigPoolNodeDegraded, corev1.ConditionTrue,
			fmt.Sprintf("%d nodes are reporting degraded status on sync", degraded), nodeMessage)
	} else {
		setPoolCondition(&st, mcfgv1.MachineConfigPoolNodeDegraded, corev1.ConditionFalse, "", "")
	}
	render := findPoolCondition(st.Conditions, mcfgv1.MachineConfigPoolRenderDegraded)
	if degraded > 0 || (render != nil && render.Status == corev1.ConditionTrue) {
		setPoolCondition(&st, mcfgv1.MachineConfigPoolDegraded, corev1.ConditionTrue, "", nodeMessage)
	} else {
		setPoolCondition(&st, mcfgv1.MachineConfigPoolDegraded, corev1.ConditionFalse, "", "")
	}
	return st
}

// nodeSchedulable is the MCO's node readiness: Ready, no disk pressure, a
// network, and not cordoned.
func nodeSchedulable(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		switch {
		case c.Type == corev1.NodeReady && c.Status != corev1.ConditionTrue,
			c.Type == corev1.NodeDiskPressure && c.Status != corev1.ConditionFalse,
			c.Type == corev1.NodeNetworkUnavailable && c.Status != corev1.ConditionFalse:
			return false
		}
	}
	return nodeIsReady(n) && !n.Spec.Unschedulable
}

func findPoolCondition(conds []mcfgv1.MachineConfigPoolCondition, t mcfgv1.MachineConfigPoolConditionType) *mcfgv1.MachineConfigPoolCondition {
	for i := range conds {
		if conds[i].Type == t {
			return &conds[i]
		}
	}
	return nil
}

// setPoolCondition sets a condition, keeping its transition time while its
// status stays the same.
func setPoolCondition(st *mcfgv1.MachineConfigPoolStatus, t mcfgv1.MachineConfigPoolConditionType, status corev1.ConditionStatus, reason, message string) {
	c := mcfgv1.MachineConfigPoolCondition{Type: t, Status: status, Reason: reason, Message: message, LastTransitionTime: metav1.Now()}
	if old := findPoolCondition(st.Conditions, t); old != nil {
		if old.Status == status {
			c.LastTransitionTime = old.LastTransitionTime
		}
		*old = c
		return
	}
	st.Conditions = append(st.Conditions, c)
}
