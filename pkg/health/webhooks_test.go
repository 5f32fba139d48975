package health

import (
	"reflect"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func hook(name string, policy *admissionregistrationv1.FailurePolicyType, svc string, rules ...admissionregistrationv1.RuleWithOperations) admissionregistrationv1.ValidatingWebhook {
	w := admissionregistrationv1.ValidatingWebhook{Name: name, FailurePolicy: policy, Rules: rules}
	if strings.HasPrefix(svc, "https://") {
		w.ClientConfig.URL = &svc
	} else {
		ns, n, _ := strings.Cut(svc, "/")
		w.ClientConfig.Service = &admissionregistrationv1.ServiceReference{Namespace: ns, Name: n}
	}
	return w
}

func rule(groups []string, resources ...string) admissionregistrationv1.RuleWithOperations {
	return admissionregistrationv1.RuleWithOperations{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
		Rule: admissionregistrationv1.Rule{APIGroups: groups, Resources: resources}}
}

func TestWebhooks(t *testing.T) {
	fail, ignore := admissionregistrationv1.Fail, admissionregistrationv1.Ignore
	ready := map[string]bool{"policy/kyverno-svc": true, "gatekeeper-system/gatekeeper-webhook-service": false}
	for _, tc := range []struct {
		name     string
		w        admissionregistrationv1.ValidatingWebhook
		severity Severity
		evidence string
	}{
		{"served", hook("validate.kyverno.svc", &fail, "policy/kyverno-svc", rule([]string{""}, "pods")), OK, ""},
		{"fails closed, service down", hook("validation.gatekeeper.sh", &fail, "gatekeeper-system/gatekeeper-webhook-service", rule([]string{"*"}, "*")), Warn,
			"validating webhook gatekeeper/validation.gatekeeper.sh → service gatekeeper-system/gatekeeper-webhook-service has no ready endpoint: it blocks every resource while down"},
		{"no policy means Fail, no endpoints at all", hook("check.example.com", nil, "example/webhook", rule([]string{"", "apps"}, "pods", "deployments"), rule([]string{"batch"}, "jobs")), Warn,
			"it blocks deployments, deployments.apps, jobs.batch, pods and 1 more while down"},
		{"fails open", hook("check.example.com", &ignore, "example/webhook", rule([]string{""}, "pods")), OK, ""},
		{"called by URL", hook("check.example.com", &fail, "https://hooks.example.com/check", rule([]string{""}, "pods")), OK, ""},
	} {
		cfg := admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "gatekeeper"}, Webhooks: []admissionregistrationv1.ValidatingWebhook{tc.w}}
		r := Webhooks([]admissionregistrationv1.ValidatingWebhookConfiguration{cfg}, nil, ready)
		if r.Severity != tc.severity || !strings.Contains(evidence(r), tc.evidence) || (tc.evidence == "") != (len(r.Evidence) == 0) || (r.Severity == OK) != (r.Fix == "") {
			t.Errorf("%s: %+v, want %s with %q", tc.name, r, tc.severity, tc.evidence)
		}
		if r.Severity == Warn && !strings.Contains(r.Fix, "5.4.2.2 \"Restoring to a previous cluster state\"") {
			t.Errorf("%s: fix %q", tc.name, r.Fix)
		}
	}
	m := hook("mutate.example.com", nil, "example/webhook", rule([]string{""}, "pods"))
	mutating := admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "example"},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{Name: m.Name, ClientConfig: m.ClientConfig, Rules: m.Rules}}}
	if r := Webhooks(nil, []admissionregistrationv1.MutatingWebhookConfiguration{mutating}, ready); r.Severity != Warn ||
		evidence(r) != "mutating webhook example/mutate.example.com → service example/webhook has no ready endpoint: it blocks pods while down" {
		t.Errorf("mutating: %+v", r)
	}
}

func TestReadyServices(t *testing.T) {
	yes, no := true, false
	slice := func(ns, svc string, ready ...*bool) discoveryv1.EndpointSlice {
		s := discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Labels: map[string]string{discoveryv1.LabelServiceName: svc}}}
		for _, r := range ready {
			s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Conditions: discoveryv1.EndpointConditions{Ready: r}})
		}
		return s
	}
	got := ReadyServices([]discoveryv1.EndpointSlice{
		slice("a", "ready", &no, &yes),
		slice("a", "unset", nil),
		slice("a", "down", &no),
		slice("a", "empty"),
		slice("a", "split", &no), slice("a", "split", &yes), slice("a", "split"),
		{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "unlabelled"}},
	})
	want := map[string]bool{"a/ready": true, "a/unset": true, "a/down": false, "a/empty": false, "a/split": true}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
