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
	"k8s.io/apimachinery/pkg/runtime"
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

// The choice of node follows the documentation's signs of an unhealthy member
// (OpenShift 4.5, Backup and restore, 2.2 and 2.3): node
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
	nodes, err := ControlPlaneNodes(context.Background(), Clients{Kube: kube, Operator: ops}, false)
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
		Kube:            fake.NewSimpleClientset(master("m0", true), etcdPod("m0", corev1.PodRunning, true), apiserverPod("m0", true)),
		OpenShiftConfig: configfake.NewSimpleClientset(append(clusterOperators(nil), cv)...),
		Operator:        operatorfake.NewSimpleClientset(),
	}
	// The fake clientset allows every access review.
	allowAll(clients.Kube.(*fake.Clientset))
	_, err := Preflight(context.Background(), clients, PreflightOptions{Now: now})
	if err == nil || !strings.Contains(err.Error(), "installed 5h0m0s ago") {
		t.Fatalf("5h after installation: %v", err)
	}
	cl, err := Preflight(context.Background(), clients, PreflightOptions{Force: true, Now: now})
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

// clusterOperators are the four static-pod operators' ClusterOperators,
// settled (Progressing=False) except those in progressing, which map an
// operator to its Progressing status and message.
func clusterOperators(progressing map[string][2]string) []runtime.Object {
	var out []runtime.Object
	for _, name := range StaticPodOperators {
		status, message := configv1.ConditionFalse, "NodeInstallerProgressing: 3 nodes are at revision 7"
		if p, ok := progressing[name]; ok {
			status, message = configv1.ConditionStatus(p[0]), p[1]
			if p[0] == "" {
				continue // no ClusterOperator at all
			}
		}
		out = append(out, &configv1.ClusterOperator{ObjectMeta: metav1.ObjectMeta{Name: name},
			Status: configv1.ClusterOperatorStatus{Conditions: []configv1.ClusterOperatorStatusCondition{
				{Type: configv1.OperatorAvailable, Status: configv1.ConditionTrue},
				{Type: configv1.OperatorProgressing, Status: status, Message: message}}}})
	}
	return out
}

func installedLongAgo(now time.Time, version string) *configv1.ClusterVersion {
	return &configv1.ClusterVersion{ObjectMeta: metav1.ObjectMeta{Name: "version"}, Spec: configv1.ClusterVersionSpec{ClusterID: "abc"},
		Status: configv1.ClusterVersionStatus{History: []configv1.UpdateHistory{{State: configv1.CompletedUpdate, Version: version, StartedTime: metav1.NewTime(now.Add(-30 * 24 * time.Hour))}}}}
}

func apiserverPod(node string, ready bool) *corev1.Pod {
	p := etcdPod(node, corev1.PodRunning, ready)
	p.Name, p.Namespace, p.Labels = "kube-apiserver-"+node, "openshift-kube-apiserver", map[string]string{"app": "openshift-kube-apiserver"}
	return p
}

// During a rollout of any of the four static-pod operators (or when one's
// state cannot be read) the backup is refused, naming the operator and its
// message and the two ways on; with --force it is taken, marked dirty, and
// the override recorded.
func TestPreflightRefusesDuringARolloutUnlessForced(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name        string
		progressing map[string][2]string
		want        []string
	}{
		{"kube-apiserver rolling out", map[string][2]string{"kube-apiserver": {"True", "NodeInstallerProgressing: 1 node is at revision 7; 2 nodes are at revision 8"}},
			[]string{"kube-apiserver is rolling out", "Progressing=True: NodeInstallerProgressing: 1 node is at revision 7; 2 nodes are at revision 8", "kubectl get clusteroperators kube-apiserver kube-controller-manager kube-scheduler etcd", "`kubectl recover backup` again", "--force", "__POSSIBLY_DIRTY__"}},
		{"two operators", map[string][2]string{"etcd": {"True", "NodeInstallerProgressing: 1 node is at revision 4"}, "kube-scheduler": {"Unknown", ""}},
			[]string{"kube-scheduler, etcd are rolling out", "kube-scheduler (Progressing=Unknown)", "etcd (Progressing=True: NodeInstallerProgressing"}},
		{"an operator missing", map[string][2]string{"kube-controller-manager": {"", ""}},
			[]string{"kube-controller-manager (Progressing=Unknown: clusteroperator kube-controller-manager not found)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clients := Clients{
				Kube:            fake.NewSimpleClientset(master("m0", true), etcdPod("m0", corev1.PodRunning, true), apiserverPod("m0", true)),
				OpenShiftConfig: configfake.NewSimpleClientset(append(clusterOperators(tc.progressing), installedLongAgo(now, "4.14.8"))...),
				Operator:        operatorfake.NewSimpleClientset(),
			}
			allowAll(clients.Kube.(*fake.Clientset))
			_, err := Preflight(context.Background(), clients, PreflightOptions{Now: now, Command: "kubectl recover"})
			if err == nil {
				t.Fatal("a backup during a rollout was not refused")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("refusal lacks %q:\n%v", w, err)
				}
			}
			cl, err := Preflight(context.Background(), clients, PreflightOptions{Now: now, Force: true})
			if err != nil || !cl.Dirty || len(cl.Forced) != 1 || !strings.Contains(cl.Forced[0], "possibly dirty") || len(cl.Rollouts) != len(tc.progressing) {
				t.Fatalf("--force during a rollout: %+v %v", cl, err)
			}
		})
	}
	clients := Clients{
		Kube:            fake.NewSimpleClientset(master("m0", true), etcdPod("m0", corev1.PodRunning, true), apiserverPod("m0", true)),
		OpenShiftConfig: configfake.NewSimpleClientset(append(clusterOperators(nil), installedLongAgo(now, "4.14.8"))...),
		Operator:        operatorfake.NewSimpleClientset(),
	}
	allowAll(clients.Kube.(*fake.Clientset))
	if cl, err := Preflight(context.Background(), clients, PreflightOptions{Now: now}); err != nil || cl.Dirty || len(cl.Forced) != 0 {
		t.Fatalf("settled operators: %+v %v", cl, err)
	}
}

// From 4.6 the host script asks the node's own kube-apiserver for the
// operators' state: a node whose kube-apiserver pod is not ready is passed
// over; 4.5's script does not ask, so there it does not matter.
func TestPreflightNeedsTheNodesOwnAPIServerFrom46(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct{ version, want string }{{"4.14.8", "m1"}, {"4.6.1", "m1"}, {"4.5.41", "m0"}} {
		clients := Clients{
			Kube: fake.NewSimpleClientset(master("m0", true), etcdPod("m0", corev1.PodRunning, true), apiserverPod("m0", false),
				master("m1", true), etcdPod("m1", corev1.PodRunning, true), apiserverPod("m1", true)),
			OpenShiftConfig: configfake.NewSimpleClientset(append(clusterOperators(nil), installedLongAgo(now, tc.version))...),
			Operator:        operatorfake.NewSimpleClientset(),
		}
		allowAll(clients.Kube.(*fake.Clientset))
		cl, err := Preflight(context.Background(), clients, PreflightOptions{Now: now})
		if err != nil || cl.Node != tc.want {
			t.Errorf("%s: node %v, %v; want %s", tc.version, cl, err, tc.want)
		}
		if tc.want == "m1" {
			_, err := Preflight(context.Background(), clients, PreflightOptions{Now: now, Node: "m0"})
			if err == nil || !strings.Contains(err.Error(), "its own kube-apiserver (pod kube-apiserver-m0) is not running and ready") {
				t.Errorf("%s --node m0: %v", tc.version, err)
			}
		}
	}
}
