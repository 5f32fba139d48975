package health

import (
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const readyzBody = `[+]ping ok
[+]log ok
[-]etcd failed: reason withheld
[+]poststarthook/start-kube-apiserver-admission-initializer ok
[-]poststarthook/rbac/bootstrap-roles failed: reason withheld
readyz check failed
`

func TestReadyz(t *testing.T) {
	for _, tc := range []struct {
		name     string
		code     int
		body     string
		err      error
		severity Severity
		evidence string
	}{
		{"ready", 200, "[+]ping ok\n[+]etcd ok\nreadyz check passed\n", nil, OK, ""},
		{"not reached", 0, "", errors.New("connection refused"), Fail, ""},
		{"not ready", 500, readyzBody, nil, Fail, "etcd failed\npoststarthook/rbac/bootstrap-roles failed"},
		{"a failed check behind a 200", 200, "[+]ping ok\n[-]shutdown failed: reason withheld\n", nil, Warn, "shutdown failed"},
	} {
		r := Readyz(tc.code, tc.body, tc.err)
		if r.ID != "api.readyz" || r.Severity != tc.severity || evidence(r) != tc.evidence || (r.Severity == OK) != (r.Fix == "") {
			t.Errorf("%s: %+v, want %s with evidence %q", tc.name, r, tc.severity, tc.evidence)
		}
	}
	if r := Livez(200, "[+]ping ok\n", nil); r.ID != "api.livez" || r.Severity != OK || !strings.Contains(r.Summary, "/livez") {
		t.Errorf("livez: %+v", r)
	}
}

func apiserverPod(node string, phase corev1.PodPhase, ready ...bool) corev1.Pod {
	p := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "kube-apiserver-" + node, Namespace: KubeAPIServerNamespace}}
	p.Status.Phase = phase
	for i, r := range ready {
		p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{Name: []string{"kube-apiserver", "kube-apiserver-check-endpoints"}[i], Ready: r})
	}
	return p
}

func TestAPIInstances(t *testing.T) {
	cp := []string{"master-2", "master-0", "master-1"}
	guard := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "kube-apiserver-guard-master-2", Namespace: KubeAPIServerNamespace}, Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	for _, tc := range []struct {
		name     string
		pods     []corev1.Pod
		severity Severity
		evidence string
	}{
		{"all ready", []corev1.Pod{apiserverPod("master-0", corev1.PodRunning, true, true), apiserverPod("master-1", corev1.PodRunning, true, true), apiserverPod("master-2", corev1.PodRunning, true, true)}, OK, ""},
		// The guard pod's name must not stand in for the missing instance.
		{"one missing", []corev1.Pod{apiserverPod("master-0", corev1.PodRunning, true, true), apiserverPod("master-1", corev1.PodRunning, true, true), guard}, Fail, "master-2: no pod kube-apiserver-master-2"},
		{"a container not ready", []corev1.Pod{apiserverPod("master-0", corev1.PodRunning, true, false), apiserverPod("master-1", corev1.PodRunning, true, true), apiserverPod("master-2", corev1.PodRunning, true, true)}, Fail,
			"master-0: kube-apiserver-master-0 is Running, but not ready: kube-apiserver-check-endpoints"},
		{"pending", []corev1.Pod{apiserverPod("master-0", corev1.PodRunning, true, true), apiserverPod("master-1", corev1.PodPending), apiserverPod("master-2", corev1.PodRunning, true, true)}, Fail, "master-1: kube-apiserver-master-1 is Pending"},
	} {
		r := APIInstances(tc.pods, cp)
		if r.Severity != tc.severity || evidence(r) != tc.evidence {
			t.Errorf("%s: %+v, want %s with evidence %q", tc.name, r, tc.severity, tc.evidence)
		}
		if r.Severity == Fail && (!strings.Contains(r.Summary, "2 of 3") || !strings.Contains(r.Fix, "oc recover redeploy kube-apiserver")) {
			t.Errorf("%s: summary %q, fix %q", tc.name, r.Summary, r.Fix)
		}
	}
}

func TestAPIServices(t *testing.T) {
	available := []APIService{{Name: "v1.apps.openshift.io", Available: true}, {Name: "v1beta1.metrics.k8s.io", Available: true}, {Name: "v1.apps", Available: true}}
	for _, tc := range []struct {
		name     string
		extra    APIService
		severity Severity
		evidence string
	}{
		{"all available", APIService{Name: "v1.route.openshift.io", Available: true}, OK, ""},
		{"an OpenShift API down", APIService{Name: "v1.route.openshift.io", Reason: "FailedDiscoveryCheck", Message: "failing or missing\n response"}, Fail,
			"v1.route.openshift.io not Available: FailedDiscoveryCheck: failing or missing response"},
		{"the metrics API down", APIService{Name: "v1beta1.metrics.k8s.io", Reason: "ServiceNotFound"}, Fail, "v1beta1.metrics.k8s.io not Available: ServiceNotFound"},
		{"another API down", APIService{Name: "v1alpha1.example.com"}, Warn, "v1alpha1.example.com not Available"},
	} {
		r := APIServices(append(append([]APIService{}, available...), tc.extra))
		if r.Severity != tc.severity || evidence(r) != tc.evidence || (r.Severity == OK) != (r.Fix == "") {
			t.Errorf("%s: %+v, want %s with evidence %q", tc.name, r, tc.severity, tc.evidence)
		}
	}
}
