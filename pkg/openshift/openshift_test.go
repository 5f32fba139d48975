package openshift

import (
	"context"
	"reflect"
	"testing"

	operatorv1 "github.com/openshift/api/operator/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func node(name string, labels ...string) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{}}}
	for _, l := range labels {
		n.Labels[l] = ""
	}
	return n
}

func TestControlPlaneNodesTakesEitherLabelOnce(t *testing.T) {
	kube := fake.NewSimpleClientset(
		node("master-2", MasterLabel),                    // releases before 4.9
		node("master-0", MasterLabel, ControlPlaneLabel), // 4.9 and later
		node("cp-1", ControlPlaneLabel),                  // the upstream label alone
		node("worker-0", "node-role.kubernetes.io/worker"),
	)
	nodes, err := ControlPlaneNodes(context.Background(), kube)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range nodes {
		names = append(names, n.Name)
		if !IsControlPlane(&n) {
			t.Errorf("IsControlPlane(%s) = false for a node ControlPlaneNodes returned", n.Name)
		}
	}
	if want := []string{"cp-1", "master-0", "master-2"}; !reflect.DeepEqual(names, want) {
		t.Errorf("control-plane nodes %v, want %v (each once, by name, no worker)", names, want)
	}
	if IsControlPlane(node("worker-0", "node-role.kubernetes.io/worker")) {
		t.Error("IsControlPlane(worker) = true")
	}
}

func TestNodeReadiness(t *testing.T) {
	withReady := func(s corev1.ConditionStatus) *corev1.Node {
		n := node("n")
		n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionTrue}, {Type: corev1.NodeReady, Status: s}}
		return n
	}
	for _, tc := range []struct {
		name   string
		node   *corev1.Node
		status corev1.ConditionStatus
	}{
		{"Ready", withReady(corev1.ConditionTrue), corev1.ConditionTrue},
		{"not Ready", withReady(corev1.ConditionFalse), corev1.ConditionFalse},
		{"stopped reporting", withReady(corev1.ConditionUnknown), corev1.ConditionUnknown},
		{"never reported", node("n"), corev1.ConditionUnknown},
	} {
		if got := NodeReadyStatus(tc.node); got != tc.status {
			t.Errorf("%s: NodeReadyStatus = %s, want %s", tc.name, got, tc.status)
		}
		if got := NodeReady(tc.node); got != (tc.status == corev1.ConditionTrue) {
			t.Errorf("%s: NodeReady = %v", tc.name, got)
		}
	}
	n := node("n")
	if NodeUnreachable(n) {
		t.Error("NodeUnreachable without taints = true")
	}
	n.Spec.Taints = []corev1.Taint{{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoExecute}}
	if !NodeUnreachable(n) {
		t.Error("NodeUnreachable with the unreachable taint = false")
	}
}

func TestEtcdMembersAvailable(t *testing.T) {
	etcd := &operatorv1.Etcd{}
	if got := EtcdMembersAvailable(etcd); got != "" {
		t.Errorf("no condition: %q, want empty", got)
	}
	msg := "1 of 3 members are available, master-1 is unhealthy, master-2 is unhealthy"
	etcd.Status.Conditions = []operatorv1.OperatorCondition{
		{Type: "EtcdMembersDegraded", Message: "master-0 is unhealthy"},
		{Type: "EtcdMembersAvailable", Message: msg},
	}
	if got := EtcdMembersAvailable(etcd); got != msg {
		t.Errorf("message %q, want %q", got, msg)
	}
	if got, want := UnhealthyMembers(msg), map[string]bool{"master-1": true, "master-2": true}; !reflect.DeepEqual(got, want) {
		t.Errorf("unhealthy %v, want %v", got, want)
	}
	if got := UnhealthyMembers("3 members are available"); len(got) != 0 {
		t.Errorf("all available: unhealthy %v, want none", got)
	}
}

func TestQuorumGuardLifted(t *testing.T) {
	for raw, want := range map[string]bool{
		``:              false,
		`{"foo":"bar"}`: false,
		`{"useUnsupportedUnsafeNonHANonProductionUnstableEtcd":true}`:    true,
		`{"useUnsupportedUnsafeNonHANonProductionUnstableEtcd":"true"}`:  true,
		`{"useUnsupportedUnsafeNonHANonProductionUnstableEtcd":"1"}`:     true,
		`{"useUnsupportedUnsafeNonHANonProductionUnstableEtcd":false}`:   false,
		`{"useUnsupportedUnsafeNonHANonProductionUnstableEtcd":"false"}`: false,
		`{"useUnsupportedUnsafeNonHANonProductionUnstableEtcd":"yes"}`:   false,
		`{"useUnsupportedUnsafeNonHANonProductionUnstableEtcd":null}`:    false,
		`not json`: false,
	} {
		if got := QuorumGuardLifted([]byte(raw)); got != want {
			t.Errorf("QuorumGuardLifted(%s) = %v, want %v", raw, got, want)
		}
	}
}
