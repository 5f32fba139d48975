package box

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	operatorv1 "github.com/openshift/api/operator/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
)

// revisionRoller simulates the revision controller and node installer of
// OpenShift's four static-pod operators (etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler): a new spec.forceRedeploymentReason
// makes a new revision, which is installed on one control-plane node at a
// time (the revision's resources and manifest written into the node's
// sandbox, as the installer pod does), with NodeInstallerProgressing telling
// how far it got.
type revisionRoller struct {
	b      *Box
	period time.Duration
	// installTime is how long installing a revision on one node takes.
	installTime time.Duration
	mu          sync.Mutex
	observed    map[string]string    // operator resource -> reason rolled out
	started     map[string]time.Time // operator resource/node -> install start
}

func (r *revisionRoller) run(ctx context.Context) {
	everyRound(ctx, r.period, func(rctx context.Context) {
		for _, op := range staticPodOperators {
			if err := r.step(rctx, op); err != nil && ctx.Err() == nil {
				klogf("revision roller %s: %v", op.Resource, err)
			}
		}
	})
}

// staticPodOperatorObject reads and writes the parts of the four operator
// CRs that the roller needs, whichever type holds them.
type staticPodOperatorObject struct {
	reason string
	// unsafeOverride is etcd's
	// unsupportedConfigOverrides.useUnsupportedUnsafeNonHANonProductionUnstableEtcd.
	unsafeOverride bool
	status         *operatorv1.StaticPodOperatorStatus
	update         func(context.Context) error
}

func (r *revisionRoller) get(ctx context.Context, op staticPodOperator) (*staticPodOperatorObject, error) {
	ops := r.b.Operator.OperatorV1()
	switch op.Resource {
	case "etcd":
		obj, err := ops.Etcds().Get(ctx, "cluster", metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		return &staticPodOperatorObject{reason: obj.Spec.ForceRedeploymentReason, unsafeOverride: unsafeEtcdOverride(obj.Spec.UnsupportedConfigOverrides.Raw),
			status: &obj.Status.StaticPodOperatorStatus, update: func(ctx context.Context) error {
				_, err := ops.Etcds().UpdateStatus(ctx, obj, metav1.UpdateOptions{})
				return err
			}}, nil
	case "kubeapiserver":
		obj, err := ops.KubeAPIServers().Get(ctx, "cluster", metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		return &staticPodOperatorObject{reason: obj.Spec.ForceRedeploymentReason, status: &obj.Status.StaticPodOperatorStatus, update: func(ctx context.Context) error {
			_, err := ops.KubeAPIServers().UpdateStatus(ctx, obj, metav1.UpdateOptions{})
			return err
		}}, nil
	case "kubecontrollermanager":
		obj, err := ops.KubeControllerManagers().Get(ctx, "cluster", metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		return &staticPodOperatorObject{reason: obj.Spec.ForceRedeploymentReason, status: &obj.Status.StaticPodOperatorStatus, update: func(ctx context.Context) error {
			_, err := ops.KubeControllerManagers().UpdateStatus(ctx, obj, metav1.UpdateOptions{})
			return err
		}}, nil
	default:
		obj, err := ops.KubeSchedulers().Get(ctx, "cluster", metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		return &staticPodOperatorObject{reason: obj.Spec.ForceRedeploymentReason, status: &obj.Status.StaticPodOperatorStatus, update: func(ctx context.Context) error {
			_, err := ops.KubeSchedulers().UpdateStatus(ctx, obj, metav1.UpdateOptions{})
			return err
		}}, nil
	}
}

// step advances one operator's rollout by one action: start a revision, or
// install it on the next node, or declare it done.
func (r *revisionRoller) step(ctx context.Context, op staticPodOperator) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		obj, err := r.get(ctx, op)
		if err != nil {
			return err
		}
		st := obj.status
		r.b.rollouts.record(op, st)
		update := obj.update
		obj.update = func(ctx context.Context) error {
			err := update(ctx)
			if err == nil {
				r.b.rollouts.record(op, st)
			}
			return err
		}
		// The operators' node controller: one node status per
		// control-plane node.
		if nodes, err := r.b.controlPlaneNodeNames(); err == nil && syncNodeStatuses(st, nodes) {
			setProgressing(st)
			return obj.update(ctx)
		}
		r.mu.Lock()
		observed := r.observed[op.Resource]
		r.mu.Unlock()
		latest := st.LatestAvailableRevision
		if op.Resource == "etcd" && !obj.unsafeOverride {
			// The quorum guard: rolling etcd restarts one member at a time,
			// which with fewer than three healthy members would lose quorum.
			if healthy, _ := r.b.etcdHealth(); healthy < 3 {
				return nil
			}
		}
		behind := -1
		for i, n := range st.NodeStatuses {
			if n.CurrentRevision < latest {
				behind = i
				break
			}
		}
		switch {
		case obj.reason != observed && behind < 0:
			// A new reason: a new revision, on no node yet.
			st.LatestAvailableRevision = latest + 1
			st.LatestAvailableRevisionReason = obj.reason
			setProgressing(st)
			if err := obj.update(ctx); err != nil {
				return err
			}
			r.mu.Lock()
			r.observed[op.Resource] = obj.reason
			r.mu.Unlock()
			return nil
		case behind >= 0:
			if r.b.rollouts.isHeld(op.Resource) {
				return nil // HoldRollout: the installer pods wait
			}
			ns := &st.NodeStatuses[behind]
			node := r.b.Node(ns.NodeName)
			if node == nil || node.Kubelet == nil || !node.Kubelet.serviceActive() {
				return nil // the installer pod cannot run on a stopped node
			}
			key := op.Resource + "/" + ns.NodeName
			if ns.TargetRevision != latest {
				// The installer pod starts on this node.
				ns.TargetRevision = latest
				r.mu.Lock()
				r.started[key] = time.Now()
				r.mu.Unlock()
				setProgressing(st)
				return obj.update(ctx)
			}
			r.mu.Lock()
			started, ok := r.started[key]
			r.mu.Unlock()
			if ok && time.Since(started) < r.installTime {
				return nil
			}
			if err := r.install(op, node, latest); err != nil {
				return err
			}
			ns.CurrentRevision, ns.TargetRevision, ns.LastFailedRevision = latest, 0, 0
			setProgressing(st)
			return obj.update(ctx)
		default:
			if cond := findCondition(st.Conditions, "NodeInstallerProgressing"); cond == nil || cond.Status != operatorv1.ConditionFalse {
				setProgressing(st)
				return obj.update(ctx)
			}
			return nil
		}
	})
}

// syncNodeStatuses makes the node statuses follow the control-plane nodes,
// as the operators' node controller does: a new node is appended with no
// revision (the CRD forbids creating a node status with one), a deleted
// node's status is dropped. It reports whether anything changed.
func syncNodeStatuses(st *operatorv1.StaticPodOperatorStatus, nodes []string) bool {
	want := map[string]bool{}
	for _, n := range nodes {
		want[n] = true
	}
	changed := false
	kept := st.NodeStatuses[:0:0]
	have := map[string]bool{}
	for _, ns := range st.NodeStatuses {
		if !want[ns.NodeName] {
			changed = true
			continue
		}
		kept = append(kept, ns)
		have[ns.NodeName] = true
	}
	for _, n := range nodes {
		if !have[n] {
			kept = append(kept, operatorv1.NodeStatus{NodeName: n})
			changed = true
		}
	}
	if changed {
		st.NodeStatuses = kept
	}
	return changed
}

// install writes the revision's resources and static pod manifest into the
// node's sandbox; the kubelet picks the manifest up.
func (r *revisionRoller) install(op staticPodOperator, n *Node, revision int32) error {
	pod := controlPlanePodManifest(op, revision)
	if op.Pod == "etcd" {
		var eps []string
		for _, m := range r.b.masters() {
			if m.Etcd != nil {
				eps = append(eps, m.Etcd.ClientURL())
			}
		}
		pod = etcdPodManifest(n.Name, revision, eps, r.b.etcdComputedEnv())
	}
	// The revision's secrets are in place before its manifest, as the
	// installer pod copies them.
	if mode := r.b.encryption.encrypted(); op.Pod == "kube-apiserver" && mode != "" {
		if err := writeEncryptionConfig(n.Sandbox.Root, revision, mode); err != nil {
			return err
		}
	}
	return writeStaticPod(n.Sandbox.Root, op.Pod, revision, pod, r.b.revisionFiles(op.Pod))
}

// setProgressing words NodeInstallerProgressing as the operators do.
func setProgressing(st *operatorv1.StaticPodOperatorStatus) {
	counts := map[int32]int{}
	for _, n := range st.NodeStatuses {
		counts[n.CurrentRevision]++
	}
	var revs []int32
	for rev := range counts {
		revs = append(revs, rev)
	}
	sort.Slice(revs, func(i, j int) bool { return revs[i] < revs[j] })
	var parts []string
	for _, rev := range revs {
		parts = append(parts, nodesAtRevision(counts[rev], rev))
	}
	cond := operatorv1.OperatorCondition{Type: "NodeInstallerProgressing", Status: operatorv1.ConditionFalse, Reason: "AllNodesAtLatestRevision", Message: strings.Join(parts, "; ")}
	if counts[st.LatestAvailableRevision] != len(st.NodeStatuses) {
		cond.Status, cond.Reason = operatorv1.ConditionTrue, "NodeInstaller"
		if counts[st.LatestAvailableRevision] == 0 {
			cond.Message += fmt.Sprintf("; 0 nodes have achieved new revision %d", st.LatestAvailableRevision)
		}
	}
	setOperatorCondition(&st.Conditions, cond)
}

func nodesAtRevision(count int, rev int32) string {
	if count == 1 {
		return fmt.Sprintf("1 node is at revision %d", rev)
	}
	return fmt.Sprintf("%d nodes are at revision %d", count, rev)
}

func findCondition(conds []operatorv1.OperatorCondition, t string) *operatorv1.OperatorCondition {
	for i := range conds {
		if conds[i].Type == t {
			return &conds[i]
		}
	}
	return nil
}

// unsafeEtcdOverride reads useUnsupportedUnsafeNonHANonProductionUnstableEtcd
// from etcd's unsupportedConfigOverrides, which lifts the quorum guard.
func unsafeEtcdOverride(raw []byte) bool {
	var o struct {
		Unsafe any `json:"useUnsupportedUnsafeNonHANonProductionUnstableEtcd"`
	}
	if len(raw) == 0 || json.Unmarshal(raw, &o) != nil {
		return false
	}
	switch v := o.Unsafe.(type) {
	case bool:
		return v
	case string:
		return v == "true"
	}
	return false
}
