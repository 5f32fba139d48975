package health

import (
	"strings"
	"testing"
	"time"

	configv1 "github.com/openshift/api/config/v1"
	operatorv1 "github.com/openshift/api/operator/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/oc-recover/oc-recover/pkg/openshift"
)

var now = time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)

func node(name string, cp bool, ready corev1.ConditionStatus, heartbeat time.Duration, pressure ...corev1.NodeConditionType) corev1.Node {
	n := corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{}}}
	if cp {
		n.Labels[openshift.MasterLabel] = ""
	}
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: ready, LastHeartbeatTime: metav1.NewTime(now.Add(-heartbeat))}}
	for _, p := range pressure {
		n.Status.Conditions = append(n.Status.Conditions, corev1.NodeCondition{Type: p, Status: corev1.ConditionTrue})
	}
	return n
}

func lease(name string, renewed time.Duration) coordinationv1.Lease {
	at := metav1.NewMicroTime(now.Add(-renewed))
	return coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: corev1.NamespaceNodeLease}, Spec: coordinationv1.LeaseSpec{RenewTime: &at}}
}

func TestNodes(t *testing.T) {
	// A healthy kubelet's Ready heartbeat may be nearly 5 minutes old: it
	// renews its lease, and writes its status only every 5 minutes.
	healthy := []corev1.Node{node("master-0", true, corev1.ConditionTrue, 4*time.Minute), node("worker-0", false, corev1.ConditionTrue, 10*time.Second)}
	leases := []coordinationv1.Lease{lease("master-0", 5*time.Second), lease("worker-0", 8*time.Second)}
	for _, tc := range []struct {
		name     string
		extra    corev1.Node
		lease    *coordinationv1.Lease
		noLeases bool
		severity Severity
		evidence string
	}{
		{"all Ready", node("worker-1", false, corev1.ConditionTrue, 4*time.Minute+30*time.Second), ptr(lease("worker-1", 9*time.Second)), false, OK, ""},
		{"a control-plane node not Ready", node("master-1", true, corev1.ConditionUnknown, 10*time.Minute), nil, false, Fail, "control-plane node master-1: Ready=Unknown"},
		{"a worker not Ready", node("worker-1", false, corev1.ConditionFalse, 10*time.Second), nil, false, Warn, "worker node worker-1: Ready=False"},
		{"a kubelet gone quiet", node("worker-1", false, corev1.ConditionTrue, 3*time.Minute), ptr(lease("worker-1", 3*time.Minute)), false, Warn, "node worker-1: Ready, but its kubelet last renewed its lease kube-node-lease/worker-1 3m0s ago"},
		{"a kubelet without a lease", node("worker-1", false, corev1.ConditionTrue, 8*time.Minute), nil, false, Warn, "node worker-1: Ready, but its kubelet last reported 8m0s ago (it has no lease)"},
		{"leases unreadable, heartbeats recent enough", node("worker-1", false, corev1.ConditionTrue, 6*time.Minute), nil, true, OK, ""},
		{"leases unreadable, a heartbeat too old", node("worker-1", false, corev1.ConditionTrue, 8*time.Minute), nil, true, Warn, "last reported 8m0s ago (the leases could not be read)"},
	} {
		ls := append([]coordinationv1.Lease{}, leases...)
		if tc.lease != nil {
			ls = append(ls, *tc.lease)
		}
		if tc.noLeases {
			ls = nil
		}
		r := Nodes(append(append([]corev1.Node{}, healthy...), tc.extra), ls, now)
		if r.Severity != tc.severity || !strings.Contains(evidence(r), tc.evidence) {
			t.Errorf("%s: %s %q, evidence:\n%s\nwant %s with %q", tc.name, r.Severity, r.Summary, evidence(r), tc.severity, tc.evidence)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func TestNodePressure(t *testing.T) {
	for _, tc := range []struct {
		name     string
		n        corev1.Node
		severity Severity
	}{
		{"none", node("master-0", true, corev1.ConditionTrue, 0), OK},
		{"disk pressure on a control-plane node", node("master-0", true, corev1.ConditionTrue, 0, corev1.NodeDiskPressure), Fail},
		{"disk pressure on a worker", node("worker-0", false, corev1.ConditionTrue, 0, corev1.NodeDiskPressure), Warn},
		{"memory pressure on a control-plane node", node("master-0", true, corev1.ConditionTrue, 0, corev1.NodeMemoryPressure), Warn},
	} {
		if r := NodePressure([]corev1.Node{tc.n}); r.Severity != tc.severity {
			t.Errorf("%s: %s (%s), want %s", tc.name, r.Severity, evidence(r), tc.severity)
		}
	}
}

func operator(name string, conds ...configv1.ClusterOperatorStatusCondition) configv1.ClusterOperator {
	return configv1.ClusterOperator{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: configv1.ClusterOperatorStatus{Conditions: conds}}
}

func cond(t configv1.ClusterStatusConditionType, s configv1.ConditionStatus, since time.Duration, msg string) configv1.ClusterOperatorStatusCondition {
	return configv1.ClusterOperatorStatusCondition{Type: t, Status: s, LastTransitionTime: metav1.NewTime(now.Add(-since)), Message: msg}
}

func TestClusterOperators(t *testing.T) {
	available := cond(configv1.OperatorAvailable, configv1.ConditionTrue, time.Hour, "")
	for _, tc := range []struct {
		name     string
		co       configv1.ClusterOperator
		severity Severity
		evidence string
	}{
		{"settled", operator("etcd", available, cond(configv1.OperatorProgressing, configv1.ConditionFalse, time.Hour, "")), OK, ""},
		{"not Available", operator("etcd", cond(configv1.OperatorAvailable, configv1.ConditionFalse, time.Minute, "no etcd members")), Fail, "etcd: not Available: no etcd members"},
		{"no Available condition", operator("etcd"), Fail, "etcd: not Available"},
		{"Degraded", operator("etcd", available, cond(configv1.OperatorDegraded, configv1.ConditionTrue, time.Minute, "EtcdMembersDegraded:\n 2 of 3")), Fail, "etcd: Degraded: EtcdMembersDegraded: 2 of 3"},
		{"Progressing a while", operator("etcd", available, cond(configv1.OperatorProgressing, configv1.ConditionTrue, 11*time.Minute, "")), Warn, "etcd: Progressing for 11m0s"},
		{"Progressing just now", operator("etcd", available, cond(configv1.OperatorProgressing, configv1.ConditionTrue, 2*time.Minute, "")), OK, ""},
		{"not Upgradeable", operator("etcd", available, cond(configv1.OperatorUpgradeable, configv1.ConditionFalse, time.Hour, "overrides")), Warn, "etcd: not Upgradeable: overrides"},
	} {
		r := ClusterOperators([]configv1.ClusterOperator{operator("dns", available), tc.co}, now)
		if r.Severity != tc.severity || !strings.Contains(evidence(r), tc.evidence) || strings.Contains(evidence(r), "dns") {
			t.Errorf("%s: %s %q, evidence:\n%s\nwant %s with %q (and nothing of dns)", tc.name, r.Severity, r.Summary, evidence(r), tc.severity, tc.evidence)
		}
	}
}

func TestClusterVersion(t *testing.T) {
	cv := func(conds ...configv1.ClusterOperatorStatusCondition) *configv1.ClusterVersion {
		v := &configv1.ClusterVersion{}
		v.Status.Desired.Version = "4.14.8"
		v.Status.Conditions = conds
		return v
	}
	if r := ClusterVersion(cv(cond(configv1.OperatorAvailable, configv1.ConditionTrue, time.Hour, ""))); r.Severity != OK || r.Summary != "OpenShift 4.14.8" {
		t.Errorf("available: %+v", r)
	}
	if r := ClusterVersion(cv(cond(configv1.OperatorAvailable, configv1.ConditionTrue, time.Hour, ""), cond("Failing", configv1.ConditionTrue, time.Minute, "payload"))); r.Severity != Fail {
		t.Errorf("failing: %+v", r)
	}
	if r := ClusterVersion(cv(cond(configv1.OperatorAvailable, configv1.ConditionTrue, time.Hour, ""), cond(configv1.OperatorProgressing, configv1.ConditionTrue, time.Minute, "Working towards 4.14.9"))); r.Severity != Warn || !strings.Contains(evidence(r), "Working towards 4.14.9") {
		t.Errorf("updating: %+v", r)
	}
}

func TestStaticPodOperator(t *testing.T) {
	status := func(revs ...int32) operatorv1.StaticPodOperatorStatus {
		st := operatorv1.StaticPodOperatorStatus{}
		st.LatestAvailableRevision = 7
		for i, rev := range revs {
			st.NodeStatuses = append(st.NodeStatuses, operatorv1.NodeStatus{NodeName: []string{"master-0", "master-1", "master-2"}[i], CurrentRevision: rev})
		}
		return st
	}
	if r := StaticPodOperator("kube-apiserver", status(7, 7, 7), now); r.Severity != OK || r.ID != "staticpods.kubeapiserver" {
		t.Errorf("settled: %+v", r)
	}
	if r := StaticPodOperator("etcd", status(7, 6, 7), now); r.Severity != Warn || !strings.Contains(evidence(r), "6 (master-1); 7 (master-0, master-2)") {
		t.Errorf("rolling: %+v", r)
	}
	if r := StaticPodOperator("etcd", status(7, 0, 7), now); r.Severity != Fail || !strings.Contains(r.Fix, "redeploy etcd") {
		t.Errorf("a node without a revision: %+v", r)
	}
	st := status(7, 7, 7)
	st.Conditions = []operatorv1.OperatorCondition{{Type: "CertRotation_KubeAPIServerToKubeletClientCert_Degraded", Status: operatorv1.ConditionTrue, Message: "expired"}}
	if r := StaticPodOperator("kube-apiserver", st, now); r.Severity != Fail || !strings.Contains(evidence(r), "CertRotation_KubeAPIServerToKubeletClientCert_Degraded: expired") {
		t.Errorf("certificate rotation degraded: %+v", r)
	}
	st = status(7, 7, 7)
	failed := metav1.NewTime(now.Add(-2 * time.Hour))
	st.NodeStatuses[2].LastFailedRevision, st.NodeStatuses[2].LastFailedTime = 6, &failed
	if r := StaticPodOperator("etcd", st, now); r.Severity != Warn || !strings.Contains(evidence(r), "node master-2: revision 6 failed 2h0m0s ago") {
		t.Errorf("a recent failed revision: %+v", r)
	}
	old := metav1.NewTime(now.Add(-48 * time.Hour))
	st.NodeStatuses[2].LastFailedTime = &old
	if r := StaticPodOperator("etcd", st, now); r.Severity != OK {
		t.Errorf("a failed revision two days ago: %+v", r)
	}
}

func TestQuorumGuardOverride(t *testing.T) {
	etcd := &operatorv1.Etcd{}
	if r := QuorumGuardOverride(etcd); r.Severity != OK {
		t.Errorf("no overrides: %+v", r)
	}
	etcd.Spec.UnsupportedConfigOverrides = runtime.RawExtension{Raw: []byte(`{"useUnsupportedUnsafeNonHANonProductionUnstableEtcd":true}`)}
	if r := QuorumGuardOverride(etcd); r.Severity != Warn || !strings.Contains(r.Fix, "member replace") {
		t.Errorf("lifted: %+v", r)
	}
}
