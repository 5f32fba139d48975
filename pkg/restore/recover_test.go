package restore

import (
	"context"
	"testing"
	"time"

	operatorv1 "github.com/openshift/api/operator/v1"
	operatorfake "github.com/openshift/client-go/operator/clientset/versioned/fake"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func etcdAt(reason string, latest int32) *operatorv1.Etcd {
	e := &operatorv1.Etcd{ObjectMeta: metav1.ObjectMeta{Name: "cluster"}}
	e.Spec.ForceRedeploymentReason = reason
	e.Status.LatestAvailableRevision = latest
	for _, n := range []string{"master-0", "master-1", "master-2"} {
		e.Status.NodeStatuses = append(e.Status.NodeStatuses, operatorv1.NodeStatus{NodeName: n, CurrentRevision: latest})
	}
	e.Status.Conditions = []operatorv1.OperatorCondition{{Type: "NodeInstallerProgressing", Status: operatorv1.ConditionFalse, Reason: "AllNodesAtLatestRevision"}}
	return e
}

// A re-run whose earlier run forced the rollout and saw it finish, but
// was stopped before it recorded so, takes the rollout as done: it does
// not force another, nor wait for a revision that will not come.
func TestRedeployResumesARolloutThatFinished(t *testing.T) {
	ops := operatorfake.NewSimpleClientset(etcdAt("recovery-x", 5))
	c := Clients{Operator: ops}
	rec := &Record{ID: "x", Reasons: map[string]string{"etcd": "recovery-x"}, Floors: map[string]int32{"etcd": 4}, Done: map[string]bool{}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := redeployOperator(ctx, c, rec, "etcd", Events{}); err != nil {
		t.Fatal(err)
	}
	if !rec.Done["etcd"] {
		t.Errorf("the rollout is not recorded done")
	}
	e, _ := ops.OperatorV1().Etcds().Get(ctx, "cluster", metav1.GetOptions{})
	if e.Spec.ForceRedeploymentReason != "recovery-x" {
		t.Errorf("reason %q", e.Spec.ForceRedeploymentReason)
	}
}

// A first run records the reason and the revision before it, then forces
// the rollout; it is not done while no node runs a newer revision.
func TestRedeployForcesAndWaitsPastTheRevisionBefore(t *testing.T) {
	ops := operatorfake.NewSimpleClientset(etcdAt("", 5))
	c := Clients{Operator: ops}
	rec := &Record{ID: "x", Reasons: map[string]string{}, Floors: map[string]int32{}, Done: map[string]bool{}}
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	if err := redeployOperator(ctx, c, rec, "etcd", Events{}); err == nil {
		t.Fatal("done without a new revision")
	}
	if rec.Reasons["etcd"] != "recovery-x" || rec.Floors["etcd"] != 5 || rec.Done["etcd"] {
		t.Errorf("record %+v", rec)
	}
	e, _ := ops.OperatorV1().Etcds().Get(context.Background(), "cluster", metav1.GetOptions{})
	if e.Spec.ForceRedeploymentReason != "recovery-x" {
		t.Errorf("reason %q, want the rollout forced", e.Spec.ForceRedeploymentReason)
	}
	if e.Annotations[RecordAnnotation] == "" {
		t.Errorf("no record on etcd/cluster")
	}
}
