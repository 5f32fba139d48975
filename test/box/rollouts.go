package box

import (
	"context"
	"fmt"
	"sync"
	"time"

	operatorv1 "github.com/openshift/api/operator/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// rollouts is what the revision roller (its only writer) tells the cluster
// operators simulator about the static-pod operators' rollouts: while a
// revision rolls out, the operator's ClusterOperator is Progressing=True
// with reason NodeInstaller, as on a real cluster. A test can hold a
// rollout in progress (HoldRollout): the roller then installs the new
// revision on no node until it is released.
type rollouts struct {
	mu          sync.Mutex
	progressing map[string]string // ClusterOperator name -> Progressing message
	held        map[string]int    // operator resource -> holds
}

func newRollouts() *rollouts {
	return &rollouts{progressing: map[string]string{}, held: map[string]int{}}
}

// record notes op's rollout state from its status.
func (r *rollouts) record(op staticPodOperator, st *operatorv1.StaticPodOperatorStatus) {
	cond := findCondition(st.Conditions, "NodeInstallerProgressing")
	r.mu.Lock()
	defer r.mu.Unlock()
	if cond != nil && cond.Status == operatorv1.ConditionTrue {
		r.progressing[op.Pod] = "NodeInstallerProgressing: " + cond.Message
	} else {
		delete(r.progressing, op.Pod)
	}
}

// progressingMessage is the Progressing message of ClusterOperator name
// while its operator rolls a revision out.
func (r *rollouts) progressingMessage(name string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	msg, ok := r.progressing[name]
	return msg, ok
}

func (r *rollouts) isHeld(resource string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.held[resource] > 0
}

// HoldRollout starts a new revision of a static-pod operator (by its
// ClusterOperator name: etcd, kube-apiserver, kube-controller-manager or
// kube-scheduler), as `oc patch ... forceRedeploymentReason` does, and holds
// it in progress: no node gets the new revision until release is called.
// It returns once the operator reports the rollout (NodeInstaller), which
// the ClusterOperator shows as Progressing=True within a sync period.
func (b *Box) HoldRollout(ctx context.Context, clusterOperator string) (release func(), err error) {
	var op *staticPodOperator
	for i := range staticPodOperators {
		if staticPodOperators[i].Pod == clusterOperator {
			op = &staticPodOperators[i]
		}
	}
	if op == nil {
		return nil, fmt.Errorf("%s is not a static-pod operator", clusterOperator)
	}
	b.rollouts.mu.Lock()
	b.rollouts.held[op.Resource]++
	b.rollouts.mu.Unlock()
	var once sync.Once
	release = func() {
		once.Do(func() {
			b.rollouts.mu.Lock()
			b.rollouts.held[op.Resource]--
			b.rollouts.mu.Unlock()
		})
	}
	patch := []byte(fmt.Sprintf(`{"spec":{"forceRedeploymentReason":"box-hold-%d"}}`, time.Now().UnixNano()))
	ops := b.Operator.OperatorV1()
	switch op.Resource {
	case "etcd":
		_, err = ops.Etcds().Patch(ctx, "cluster", types.MergePatchType, patch, metav1.PatchOptions{})
	case "kubeapiserver":
		_, err = ops.KubeAPIServers().Patch(ctx, "cluster", types.MergePatchType, patch, metav1.PatchOptions{})
	case "kubecontrollermanager":
		_, err = ops.KubeControllerManagers().Patch(ctx, "cluster", types.MergePatchType, patch, metav1.PatchOptions{})
	default:
		_, err = ops.KubeSchedulers().Patch(ctx, "cluster", types.MergePatchType, patch, metav1.PatchOptions{})
	}
	if err != nil {
		release()
		return nil, err
	}
	for {
		if _, ok := b.rollouts.progressingMessage(clusterOperator); ok {
			return release, nil
		}
		select {
		case <-ctx.Done():
			release()
			return nil, fmt.Errorf("%s: the rollout did not start: %w", clusterOperator, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
