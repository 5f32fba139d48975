package backup

import (
	"context"
	"strings"
	"testing"
	"time"

	configv1 "github.com/openshift/api/config/v1"
	operatorv1 "github.com/openshift/api/operator/v1"
	configfake "github.com/openshift/client-go/config/clientset/versioned/fake"
	operatorfake "github.com/openshift/client-go/operator/clientset/versioned/fake"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/oc-recover/oc-recover/pkg/exitcode"
)

func master(name string, ready bool) *corev1.Node {
	status := corev1.ConditionTrue
	if !ready {
		status = corev1.ConditionUnknown
	}
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"node-role.kubernetes.io/master": ""}},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: status}}}}
}

func etcdPod(node string, phase corev1.PodPhase, ready bool) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "etcd-" + node, Namespace: "openshift-etcd", Labels: map[string]string{"app": "etcd"}},
		Spec:   corev1.PodSpec{NodeName: node},
		Status: corev1.PodStatus{Phase: phase, ContainerStatuses: []corev1.ContainerStatus{{Name: "etcd", Ready: ready}}}}
}

// The choice of node follows the seeds' signs of an unhealthy member: node
// not Ready, etcd pod not running, member named unhealthy by the operator.
func TestControlPlaneNodesJudgesEachNode(t *testing.T) {
	kube := fake.NewSimpleClientset(
		master("m0", true), etcdPod("m0", corev1.PodRunning, true),
		master("m1", false), etcdPod("m1", corev1.PodRunning, true),
		master("m2", true), etcdPod("m2", corev1.PodRunning, false),
		master("m3", true), etcdPod("m3", corev1.PodRunning, true),
		master("m4", true),
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "w0"}},
	)
	ops := operatorfake.NewSimpleClientset(&operatorv1.Etcd{ObjectMeta: metav1.ObjectMeta{Name: "cluster"},
		Status: operatorv1.EtcdStatus{StaticPodOperatorStatus: operatorv1.StaticPodOperatorStatus{OperatorStatus: operatorv1.OperatorStatus{
			Conditions: []operatorv1.OperatorCondition{{Type: "EtcdMembersAvailable", Message: "3 of 5 members are available, m3 is unhealthy, m1 is unhealthy"}}}}}})
	nodes, err := ControlPlaneNodes(context.Background(), Clients{Kube: kube, Operator: ops})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"m0": "", "m1": "node not Ready", "m2": "etcd pod etcd-m2 not running and ready", "m3": "etcd member unhealthy", "m4": "no etcd pod"}
	if len(nodes) != len(want) {
		t.Fatalf("nodes = %+v", nodes)
	}
	for _, n := range nodes {
		if n.Reason != want[n.Name] || n.Healthy != (want[n.Name] == "") {
			t.Errorf("%s: healthy=%v reason=%q, want reason %q", n.Name, n.Healthy, n.Reason, want[n.Name])
		}
	}
}

func TestChooseNode(t *testing.T) {
	nodes := []ControlPlaneNode{{Name: "m0", Reason: "node not Ready"}, {Name: "m1", Healthy: true}, {Name: "m2", Healthy: true}}
	if got, err := chooseNode(nodes, ""); err != nil || got != "m1" {
		t.Errorf("default choice = %q, %v; want m1", got, err)
	}
	if got, err := chooseNode(nodes, "m2"); err != nil || got != "m2" {
		t.Errorf("--node m2 = %q, %v", got, err)
	}
	if _, err := chooseNode(nodes, "m0"); err == nil || !strings.Contains(err.Error(), "node not Ready") || exitcode.FromError(err) != exitcode.CodeFailure {
		t.Errorf("--node of an unhealthy node: %v", err)
	}
	if _, err := chooseNode(nodes, "w0"); err == nil || exitcode.FromError(err) != exitcode.CodeUsage || !strings.Contains(err.Error(), "m0, m1, m2") {
		t.Errorf("--node of a non-control-plane node: %v (code %d)", err, exitcode.FromError(err))
	}
	if _, err := chooseNode([]ControlPlaneNode{{Name: "m0", Reason: "no etcd pod"}}, ""); err == nil || !strings.Contains(err.Error(), "m0: no etcd pod") {
		t.Errorf("no healthy node: %v", err)
	}
}

// The installation time is the oldest history entry; the version the newest
// completed update.
func TestClusterVersionAndInstallTime(t *testing.T) {
	installed := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cv := &configv1.ClusterVersion{Status: configv1.ClusterVersionStatus{
		Desired: configv1.Release{Version: "4.14.9"},
		History: []configv1.UpdateHistory{
			{State: configv1.PartialUpdate, Version: "4.14.9", StartedTime: metav1.NewTime(installed.Add(48 * time.Hour))},
			{State: configv1.CompletedUpdate, Version: "4.14.8", StartedTime: metav1.NewTime(installed.Add(24 * time.Hour))},
			{State: configv1.CompletedUpdate, Version: "4.14.1", StartedTime: metav1.NewTime(installed)},
		}}}
	version, at := clusterVersion(cv)
	if version != "4.14.8" || !at.Equal(installed) {
		t.Errorf("clusterVersion = %s, %v", version, at)
	}
}

// The effective proxy (status) wins over the requested one (spec).
func TestProxyEnv(t *testing.T) {
	p := &configv1.Proxy{Spec: configv1.ProxySpec{HTTPProxy: "http://spec:1", NoProxy: "spec.local"},
		Status: configv1.ProxyStatus{HTTPProxy: "http://status:1", HTTPSProxy: "http://status:2"}}
	env := proxyEnv(p)
	if env["HTTP_PROXY"] != "http://status:1" || env["HTTPS_PROXY"] != "http://status:2" || env["NO_PROXY"] != "spec.local" || len(env) != 3 {
		t.Errorf("proxyEnv = %v", env)
	}
	if len(proxyEnv(&configv1.Proxy{})) != 0 {
		t.Error("no proxy configured, but variables exported")
	}
}

func TestPreflightRefusesEarlyBackupsUnlessForced(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	cv := &configv1.ClusterVersion{ObjectMeta: metav1.ObjectMeta{Name: "version"}, Spec: configv1.ClusterVersionSpec{ClusterID: "abc"},
		Status: configv1.ClusterVersionStatus{History: []configv1.UpdateHistory{{State: configv1.CompletedUpdate, Version: "4.14.8", StartedTime: metav1.NewTime(now.Add(-5 * time.Hour))}}}}
	clients := Clients{
		Kube:     fake.NewSimpleClientset(master("m0", true), etcdPod("m0", corev1.PodRunning, true)),
		Config:   configfake.NewSimpleClientset(cv),
		Operator: operatorfake.NewSimpleClientset(),
	}
	// The fake clientset allows every access review.
	allowAll(clients.Kube.(*fake.Clientset))
	_, err := Preflight(context.Background(), clients, "", false, now)
	if err == nil || !strings.Contains(err.Error(), "installed 5h0m0s ago") {
		t.Fatalf("5h after installation: %v", err)
	}
	cl, err := Preflight(context.Background(), clients, "", true, now)
	if err != nil || len(cl.Forced) != 1 || cl.Node != "m0" || cl.Version != "4.14.8" {
		t.Fatalf("--force: %+v %v", cl, err)
	}
}

func TestDefaultOutputDir(t *testing.T) {
	now := time.Date(2026, 11, 21, 3, 4, 5, 0, time.UTC)
	if got := DefaultOutputDir(&Cluster{ID: "38b943bb-7fd1", InfrastructureName: "prod-x7k2p"}, now); got != "backup-prod-x7k2p-20261121-030405" {
		t.Errorf("with an infrastructure name: %s", got)
	}
	if got := DefaultOutputDir(&Cluster{ID: "38b943bb-7fd1"}, now); got != "backup-38b943bb-20261121-030405" {
		t.Errorf("without: %s", got)
	}
}
