package member

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	machinev1beta1 "github.com/openshift/api/machine/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/oc-recover/oc-recover/pkg/exitcode"
)

func withPeer(s Status, ip string) Status {
	s.PeerURLs = []string{"https://" + ip + ":2380"}
	return s
}

func report(members ...Status) *Report {
	r := &Report{Members: members}
	Decide(r)
	return r
}

// Every refusal of the pre-flight, and the procedure each diagnosis leads to.
func TestJudge(t *testing.T) {
	a, b, c := withPeer(ok("a"), "10.0.0.1"), withPeer(ok("b"), "10.0.0.2"), withPeer(ok("c"), "10.0.0.3")
	stoppedB := b
	stoppedB.InstanceState, stoppedB.NodeReady, stoppedB.Healthy = "stopped", "Unknown", healthy(false)
	crashB := b
	crashB.PodState, crashB.Healthy = "CrashLoopBackOff", healthy(false)
	notReadyButServing := b
	notReadyButServing.NodeReady = "False" // kubelet down, etcd still answering
	downC := c
	downC.InstanceState, downC.NodeReady, downC.Healthy = "stopped", "Unknown", healthy(false)
	unknownB := b
	unknownB.Healthy = healthy(false) // pod Running, member down: no diagnosis
	d1, d2, d3 := withPeer(ok("d"), "10.0.0.4"), withPeer(ok("e"), "10.0.0.5"), withPeer(ok("f"), "10.0.0.6")
	downD := d1
	downD.InstanceState, downD.NodeReady, downD.Healthy = "stopped", "Unknown", healthy(false)
	target := func(mut ...func(*Target)) Target {
		t := Target{Node: "b", NodeExists: true, ControlPlane: true, Addresses: []string{"10.0.0.2", "b"}, Machine: "infra-master-1", MachineAPI: true}
		for _, m := range mut {
			m(&t)
		}
		return t
	}
	extra := report(a, stoppedB, c)
	extra.ExtraMembers = []Status{{MemberID: "99", Node: "old"}}
	cases := []struct {
		name      string
		r         *Report
		t         Target
		procedure string // "" when refused
		refusal   string
		usage     bool
		override  bool
	}{
		{name: "machine stopped", r: report(a, stoppedB, c), t: target(), procedure: ProcedureMachine, override: true},
		{name: "crashloop", r: report(a, crashB, c), t: target(), procedure: ProcedureCrashloop, override: true},
		{name: "no Machine API", r: report(a, stoppedB, c), t: target(func(t *Target) { t.Machine, t.MachineAPI = "", false }), procedure: ProcedureUPI, override: true},
		{name: "five members: guard stays", r: report(a, stoppedB, c, d2, d3), t: target(), procedure: ProcedureMachine, override: false},
		{name: "unknown node", r: report(a, stoppedB, c), t: target(func(t *Target) { t.NodeExists = false }), refusal: "there is no node", usage: true},
		{name: "worker", r: report(a, stoppedB, c), t: target(func(t *Target) { t.ControlPlane = false }), refusal: "not a control-plane node", usage: true},
		{name: "quorum lost", r: report(a, stoppedB, downC), t: target(), refusal: "lost quorum"},
		{name: "healthy target", r: report(a, b, c), t: target(), refusal: "is healthy"},
		{name: "member ID changed", r: report(a, stoppedB, c), t: target(func(t *Target) { t.MemberID = "id-x" }), refusal: "--member-id id-x does not match"},
		{name: "member ID matches", r: report(a, stoppedB, c), t: target(func(t *Target) { t.MemberID = "ID-B" }), procedure: ProcedureMachine, override: true},
		{name: "member on another host", r: report(a, withPeer(stoppedB, "10.0.0.9"), c), t: target(), refusal: "no longer matches its node"},
		{name: "would lose quorum", r: report(a, notReadyButServing, downC), t: target(), refusal: "would lose quorum"},
		{name: "two unhealthy of five", r: report(a, stoppedB, c, downD, d3), t: target(), refusal: "members of d are unhealthy"},
		{name: "machine not found", r: report(a, stoppedB, c), t: target(func(t *Target) { t.Machine = "" }), refusal: "no Machine has node b"},
		{name: "no member", r: report(a, Status{Node: "b", NodeReady: "True", PodState: "Missing"}, c), t: target(), refusal: "has no etcd member"},
		{name: "undiagnosed", r: report(a, unknownB, c), t: target(), refusal: "not diagnosed"},
		{name: "extra member", r: extra, t: target(), refusal: "match no control-plane node"},
	}
	for _, tc := range cases {
		d, err := Judge(tc.r, tc.t)
		switch {
		case tc.procedure != "" && err != nil:
			t.Errorf("%s: refused: %v", tc.name, err)
		case tc.procedure != "" && (d.Procedure != tc.procedure || d.Override != tc.override):
			t.Errorf("%s: procedure %s override %v, want %s %v", tc.name, d.Procedure, d.Override, tc.procedure, tc.override)
		case tc.procedure == "" && err == nil:
			t.Errorf("%s: not refused (procedure %s)", tc.name, d.Procedure)
		case tc.procedure == "" && !strings.Contains(err.Error(), tc.refusal):
			t.Errorf("%s: refusal %q does not say %q", tc.name, err, tc.refusal)
		case tc.procedure == "" && tc.usage != (exitcode.FromError(err) == 2):
			t.Errorf("%s: exit code %d, usage error expected %v", tc.name, exitcode.FromError(err), tc.usage)
		}
	}
}

func TestNextMachineName(t *testing.T) {
	cases := []struct {
		old      string
		existing []string
		want     string
	}{
		{"c-8qw5l-master-0", []string{"c-8qw5l-master-0", "c-8qw5l-master-1", "c-8qw5l-master-2", "c-8qw5l-worker-a-wbtgd"}, "c-8qw5l-master-3"},
		{"c-master-1", []string{"c-master-1", "c-master-2", "c-master-3"}, "c-master-4"},
		{"c-master-0", []string{"c-master-0", "c-master-5"}, "c-master-6"},
	}
	for _, c := range cases {
		got, err := NextMachineName(c.old, c.existing)
		if err != nil || got != c.want {
			t.Errorf("NextMachineName(%s) = %s, %v; want %s", c.old, got, err, c.want)
		}
	}
	if _, err := NextMachineName("master", nil); err == nil {
		t.Error("a name without an index was accepted")
	}
}

// The documentation's edit (OpenShift 4.5, Backup and restore, 2.4.1, step 3): status, providerID, annotations, generation,
// resourceVersion, uid and selfLink gone; name, labels and spec kept.
func TestStripMachine(t *testing.T) {
	old := &machinev1beta1.Machine{
		ObjectMeta: metav1.ObjectMeta{Name: "c-master-0", Namespace: "openshift-machine-api", Labels: map[string]string{"role": "master"},
			Annotations: map[string]string{"machine.openshift.io/instance-state": "stopped"}, Generation: 2, ResourceVersion: "13291",
			UID: "a282eb70", SelfLink: "/apis/x", Finalizers: []string{"machine.machine.openshift.io"}},
		Spec:   machinev1beta1.MachineSpec{ProviderID: ptr.To("aws:///i-0"), ProviderSpec: machinev1beta1.ProviderSpec{}},
		Status: machinev1beta1.MachineStatus{Phase: ptr.To("Running")},
	}
	m := StripMachine(old, "c-master-3", "master-0")
	if m.Name != "c-master-3" || m.Namespace != old.Namespace || !reflect.DeepEqual(m.Labels, old.Labels) {
		t.Errorf("identity: %+v", m.ObjectMeta)
	}
	if m.Spec.ProviderID != nil || m.Status.Phase != nil || m.Generation != 0 || m.ResourceVersion != "" || m.UID != "" || m.SelfLink != "" {
		t.Errorf("server fields kept: %+v", m)
	}
	if !reflect.DeepEqual(m.Annotations, map[string]string{ReplacesNodeAnnotation: "master-0"}) {
		t.Errorf("annotations = %v", m.Annotations)
	}
	if old.Spec.ProviderID == nil {
		t.Error("the old Machine was changed")
	}
}

// The quorum guard goes back exactly as it was, whatever it was.
func TestRestorePatch(t *testing.T) {
	cases := map[string]struct {
		original string
		want     string
	}{
		"nothing before":        {"null", `{"spec":{"unsupportedConfigOverrides":null}}`},
		"other overrides":       {`{"foo":"bar"}`, `{"spec":{"unsupportedConfigOverrides":{"foo":"bar","useUnsupportedUnsafeNonHANonProductionUnstableEtcd":null}}}`},
		"override already true": {`{"useUnsupportedUnsafeNonHANonProductionUnstableEtcd":true}`, `{"spec":{"unsupportedConfigOverrides":{"useUnsupportedUnsafeNonHANonProductionUnstableEtcd":true}}}`},
	}
	for name, c := range cases {
		patch, err := restorePatch(json.RawMessage(c.original))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := mustJSON(patch); got != c.want {
			t.Errorf("%s: %s, want %s", name, got, c.want)
		}
	}
	if _, err := restorePatch(json.RawMessage(`[1]`)); err == nil || errors.Unwrap(err) == nil {
		t.Error("a recorded value that is not an object was accepted")
	}
}
