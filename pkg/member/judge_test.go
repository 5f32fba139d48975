package member

import (
	"strings"
	"testing"

	"github.com/oc-recover/oc-recover/pkg/etcd"
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

// etcdctl calls every member unhealthy while an alarm is raised; a member
// that answered counts as healthy (for quorum, and for not replacing it),
// with the alarm kept as its health error.
func TestMemberHealthOfAMemberAnsweringUnderAnAlarm(t *testing.T) {
	m := etcd.Member{ID: 1, Name: "master-0", ClientURLs: []string{"https://10.0.0.1:2379"}}
	health := map[string]etcd.Health{"https://10.0.0.1:2379": {Endpoint: "https://10.0.0.1:2379", Health: false, Error: "Active Alarm(s): NOSPACE "}}
	h, why := memberHealth(m, health, nil)
	if h == nil || !*h || !strings.HasPrefix(why, AlarmHealthPrefix) {
		t.Errorf("under an alarm: healthy %v, %q", h, why)
	}
	health["https://10.0.0.1:2379"] = etcd.Health{Health: false, Error: "context deadline exceeded"}
	if h, _ := memberHealth(m, health, nil); h == nil || *h {
		t.Errorf("a member that did not answer is healthy: %v", h)
	}
}
