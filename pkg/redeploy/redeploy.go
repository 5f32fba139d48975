// Package redeploy forces a new revision of a static-pod operator's operand
// (etcd, kube-apiserver, kube-controller-manager, kube-scheduler) and waits
// until every control-plane node runs it, as OpenShift's restore procedure
// does (OpenShift 4.5 documentation, Backup and restore, 5.3 "Restoring to a
// previous cluster state"; OpenShift 4.12 documentation,
// Backup and restore, 5.4.2 "Restoring to a previous cluster state").
package redeploy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	operatorv1 "github.com/openshift/api/operator/v1"
	operatorclient "github.com/openshift/client-go/operator/clientset/versioned"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
)

// ControlPlane is the order in which a whole control plane is redeployed,
// as the restore procedure does it.
var ControlPlane = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"}

// ReasonPrefix starts every forceRedeploymentReason oc-recover writes.
const ReasonPrefix = "recovery-"

// NewReason is a forceRedeploymentReason no earlier run used.
func NewReason(now time.Time) string { return ReasonPrefix + now.UTC().Format(time.RFC3339Nano) }

// State is where an operator's rollout stands.
type State struct {
	Reason      string
	Latest      int32
	NodeRevs    map[string]int32
	Progressing *operatorv1.OperatorCondition
}

// Done reports whether every node runs the latest revision and the
// operator says so.
func (s State) Done() bool {
	if s.Progressing == nil || s.Progressing.Status != operatorv1.ConditionFalse || s.Progressing.Reason != "AllNodesAtLatestRevision" {
		return false
	}
	for _, rev := range s.NodeRevs {
		if rev != s.Latest {
			return false
		}
	}
	return len(s.NodeRevs) > 0
}

// Oldest is the oldest revision a node runs.
func (s State) Oldest() int32 {
	oldest := int32(-1)
	for _, rev := range s.NodeRevs {
		if oldest < 0 || rev < oldest {
			oldest = rev
		}
	}
	return oldest
}

// Summary words the nodes' revisions as the operators do
// ("2 nodes are at revision 6; 1 node is at revision 7").
func (s State) Summary() string {
	counts := map[int32]int{}
	for _, rev := range s.NodeRevs {
		counts[rev]++
	}
	var revs []int32
	for rev := range counts {
		revs = append(revs, rev)
	}
	sort.Slice(revs, func(i, j int) bool { return revs[i] < revs[j] })
	var parts []string
	for _, rev := range revs {
		if counts[rev] == 1 {
			parts = append(parts, fmt.Sprintf("1 node is at revision %d", rev))
		} else {
			parts = append(parts, fmt.Sprintf("%d nodes are at revision %d", counts[rev], rev))
		}
	}
	return strings.Join(parts, "; ")
}

// Operator is one static-pod operator's CR, whatever its Go type.
type Operator struct {
	Name   string // etcd, kube-apiserver, ...
	get    func(ctx context.Context) (string, *operatorv1.StaticPodOperatorStatus, error)
	patch  func(ctx context.Context, data []byte) error
	Object string // how the user would name it: etcd/cluster, kubeapiserver/cluster, ...
}

// For returns the operator called name.
func For(client operatorclient.Interface, name string) (*Operator, error) {
	ops := client.OperatorV1()
	mp := types.MergePatchType
	switch name {
	case "etcd":
		return &Operator{Name: name, Object: "etcd/cluster",
			get: func(ctx context.Context) (string, *operatorv1.StaticPodOperatorStatus, error) {
				o, err := ops.Etcds().Get(ctx, "cluster", metav1.GetOptions{})
				if err != nil {
					return "", nil, err
				}
				return o.Spec.ForceRedeploymentReason, &o.Status.StaticPodOperatorStatus, nil
			},
			patch: func(ctx context.Context, data []byte) error {
				_, err := ops.Etcds().Patch(ctx, "cluster", mp, data, metav1.PatchOptions{})
				return err
			}}, nil
	case "kube-apiserver":
		return &Operator{Name: name, Object: "kubeapiserver/cluster",
			get: func(ctx context.Context) (string, *operatorv1.StaticPodOperatorStatus, error) {
				o, err := ops.KubeAPIServers().Get(ctx, "cluster", metav1.GetOptions{})
				if err != nil {
					return "", nil, err
				}
				return o.Spec.ForceRedeploymentReason, &o.Status.StaticPodOperatorStatus, nil
			},
			patch: func(ctx context.Context, data []byte) error {
				_, err := ops.KubeAPIServers().Patch(ctx, "cluster", mp, data, metav1.PatchOptions{})
				return err
			}}, nil
	case "kube-controller-manager":
		return &Operator{Name: name, Object: "kubecontrollermanager/cluster",
			get: func(ctx context.Context) (string, *operatorv1.StaticPodOperatorStatus, error) {
				o, err := ops.KubeControllerManagers().Get(ctx, "cluster", metav1.GetOptions{})
				if err != nil {
					return "", nil, err
				}
				return o.Spec.ForceRedeploymentReason, &o.Status.StaticPodOperatorStatus, nil
			},
			patch: func(ctx context.Context, data []byte) error {
				_, err := ops.KubeControllerManagers().Patch(ctx, "cluster", mp, data, metav1.PatchOptions{})
				return err
			}}, nil
	case "kube-scheduler":
		return &Operator{Name: name, Object: "kubescheduler/cluster",
			get: func(ctx context.Context) (string, *operatorv1.StaticPodOperatorStatus, error) {
				o, err := ops.KubeSchedulers().Get(ctx, "cluster", metav1.GetOptions{})
				if err != nil {
					return "", nil, err
				}
				return o.Spec.ForceRedeploymentReason, &o.Status.StaticPodOperatorStatus, nil
			},
			patch: func(ctx context.Context, data []byte) error {
				_, err := ops.KubeSchedulers().Patch(ctx, "cluster", mp, data, metav1.PatchOptions{})
				return err
			}}, nil
	}
	return nil, fmt.Errorf("unknown operator %q: choose etcd, kube-apiserver, kube-controller-manager, kube-scheduler or control-plane", name)
}

// State reads where the operator's rollout stands.
func (o *Operator) State(ctx context.Context) (State, error) {
	reason, st, err := o.get(ctx)
	if err != nil {
		return State{}, fmt.Errorf("read %s: %w", o.Object, err)
	}
	s := State{Reason: reason, Latest: st.LatestAvailableRevision, NodeRevs: map[string]int32{}}
	for _, n := range st.NodeStatuses {
		s.NodeRevs[n.NodeName] = n.CurrentRevision
	}
	for i := range st.Conditions {
		if st.Conditions[i].Type == "NodeInstallerProgressing" {
			c := st.Conditions[i]
			s.Progressing = &c
		}
	}
	return s, nil
}

// Patch is the merge patch that forces a new revision. It is also what the
// plans print, so < and > stay as they are (json.Marshal would write
// \u003c for the "<time>" of a plan).
func Patch(reason string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(map[string]any{"spec": map[string]any{"forceRedeploymentReason": reason}})
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// Force writes reason into spec.forceRedeploymentReason: the operator
// rolls a new revision out.
func (o *Operator) Force(ctx context.Context, reason string) error {
	if err := o.patch(ctx, Patch(reason)); err != nil {
		return fmt.Errorf("patch %s spec.forceRedeploymentReason: %w", o.Object, err)
	}
	return nil
}

// Redeploy forces a new revision with reason and waits until every node
// runs a revision newer than the oldest one before. A rollout that an
// earlier, interrupted run started (its reason is ours and it is still in
// progress) is waited for instead of started again. progress is told every
// change of the nodes' revisions.
func (o *Operator) Redeploy(ctx context.Context, reason string, progress func(State)) (before, after State, err error) {
	before, err = o.State(ctx)
	if err != nil {
		return before, after, err
	}
	resuming := strings.HasPrefix(before.Reason, ReasonPrefix) && !before.Done()
	if !resuming {
		if err := o.Force(ctx, reason); err != nil {
			return before, after, err
		}
	}
	after, err = o.WaitPast(ctx, before.Oldest(), progress)
	return before, after, err
}

// WaitPast waits until every node runs the latest revision and it is
// newer than floor. progress is told every change of the nodes' revisions.
func (o *Operator) WaitPast(ctx context.Context, floor int32, progress func(State)) (State, error) {
	var after State
	last := ""
	err := wait.PollUntilContextCancel(ctx, 500*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		s, err := o.State(ctx)
		if err != nil {
			return false, nil // the API may blink while control-plane pods restart
		}
		after = s
		if sum := s.Summary(); sum != last && progress != nil {
			last = sum
			progress(s)
		}
		return s.Done() && s.Latest > floor, nil
	})
	if errors.Is(err, context.DeadlineExceeded) {
		return after, fmt.Errorf("%s did not reach a new revision on every node before the time ran out (--timeout); it stands at %s (latest revision %d): a node that is down or whose installer fails holds it back; re-run to keep waiting", o.Name, after.Summary(), after.Latest)
	}
	if err != nil {
		return after, fmt.Errorf("%s did not reach a new revision on every node (%s): %w", o.Name, after.Summary(), err)
	}
	return after, nil
}
