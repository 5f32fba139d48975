package power

import (
	"reflect"
	"testing"

	configv1 "github.com/openshift/api/config/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func node(name string, role string, ready bool) corev1.Node {
	n := corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{}}}
	if role != "" {
		n.Labels["node-role.kubernetes.io/"+role] = ""
	}
	status := corev1.ConditionTrue
	if !ready {
		status = corev1.ConditionUnknown
	}
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: status}}
	return n
}

func TestShutdownOrderWorkersFirstThenControlPlane(t *testing.T) {
	nodes := []corev1.Node{
		node("master-1", "master", true), node("worker-b", "worker", true), node("cp-9", "control-plane", false),
		node("infra-0", "infra", true), node("master-0", "master", true), node("worker-a", "worker", false),
	}
	got := ShutdownOrder(nodes)
	want := []Target{
		{Node: "infra-0", Role: Worker, Ready: true},
		{Node: "worker-a", Role: Worker, Ready: false},
		{Node: "worker-b", Role: Worker, Ready: true},
		{Node: "cp-9", Role: ControlPlane, Ready: false},
		{Node: "master-0", Role: ControlPlane, Ready: true},
		{Node: "master-1", Role: ControlPlane, Ready: true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("order:\n got %+v\nwant %+v", got, want)
	}
}

func TestStatePhasesFollowTheDocumentation(t *testing.T) {
	nodes := []corev1.Node{node("master-0", "master", true), node("master-1", "master", false), node("worker-0", "worker", false)}
	var s State
	s.ControlPlane, s.Workers = CountNodes(nodes)
	s.OperatorsTotal = 3
	if s.Phase() != WaitControlPlane || s.ControlPlane.Ready != 1 || !reflect.DeepEqual(s.ControlPlane.NotReady, []string{"master-1"}) {
		t.Fatalf("one master down: %+v, phase %s", s, s.Phase())
	}
	if p := s.Progress(2); p != "1 of 2 control-plane nodes Ready (not Ready: master-1); approved 2 CSR(s)" {
		t.Errorf("progress: %q", p)
	}
	nodes[1] = node("master-1", "master", true)
	s.ControlPlane, s.Workers = CountNodes(nodes)
	if s.Phase() != WaitWorkers {
		t.Errorf("masters up, worker down: phase %s", s.Phase())
	}
	nodes[2] = node("worker-0", "worker", true)
	s.ControlPlane, s.Workers = CountNodes(nodes)
	s.OperatorsOK = 2
	if s.Phase() != WaitOperators {
		t.Errorf("nodes up, an operator down: phase %s", s.Phase())
	}
	s.OperatorsOK = 3
	if s.Phase() != Started {
		t.Errorf("all up: phase %s", s.Phase())
	}
	if (State{}).Phase() != WaitControlPlane {
		t.Errorf("no node at all counts as started")
	}
}

func co(name string, conds ...configv1.ClusterOperatorStatusCondition) configv1.ClusterOperator {
	return configv1.ClusterOperator{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: configv1.ClusterOperatorStatus{Conditions: conds}}
}

func cond(t configv1.ClusterStatusConditionType, s configv1.ConditionStatus, msg string) configv1.ClusterOperatorStatusCondition {
	return configv1.ClusterOperatorStatusCondition{Type: t, Status: s, Message: msg}
}

func TestJudgeOperators(t *testing.T) {
	cos := []configv1.ClusterOperator{
		co("dns", cond(configv1.OperatorAvailable, configv1.ConditionTrue, ""), cond(configv1.OperatorDegraded, configv1.ConditionFalse, ""),
			cond(configv1.OperatorProgressing, configv1.ConditionTrue, "rolling out")),
		co("etcd", cond(configv1.OperatorAvailable, configv1.ConditionTrue, ""), cond(configv1.OperatorDegraded, configv1.ConditionTrue, "EtcdMembersDegraded: 2 of 3")),
		co("console", cond(configv1.OperatorAvailable, configv1.ConditionFalse, "no route"), cond(configv1.OperatorDegraded, configv1.ConditionFalse, "")),
		co("new-one"),
	}
	ok, problems := JudgeOperators(cos)
	if ok != 1 {
		t.Errorf("ok = %d, want 1 (Progressing alone does not count against)", ok)
	}
	want := []OperatorProblem{
		{Name: "console", Available: "False", Degraded: "False", Message: "no route"},
		{Name: "etcd", Available: "True", Degraded: "True", Message: "EtcdMembersDegraded: 2 of 3"},
		{Name: "new-one", Available: "Unknown", Degraded: "Unknown"},
	}
	if !reflect.DeepEqual(problems, want) {
		t.Errorf("problems:\n got %+v\nwant %+v", problems, want)
	}
	if s := problems[1].String(); s != "etcd (Degraded=True): EtcdMembersDegraded: 2 of 3" {
		t.Errorf("String: %q", s)
	}
}
