package member

import (
	"strings"
	"testing"
)

func healthy(b bool) *bool { return &b }

func ok(node string) Status {
	return Status{Node: node, InstanceState: "running", NodeReady: "True", PodState: "Running", MemberID: "id-" + node, Healthy: healthy(true)}
}

// The documentation's order (OpenShift 4.5, Backup and restore, 2.3):
// machine, then node, then pod.
func TestDiagnose(t *testing.T) {
	cases := map[string]struct {
		s    Status
		want string
	}{
		"healthy":              {ok("a"), Healthy},
		"instance stopped":     {Status{InstanceState: "stopped", NodeReady: "Unknown", Unreachable: true, PodState: "Running"}, MachineNotRunning},
		"node not ready":       {Status{InstanceState: "running", NodeReady: "False", PodState: "Running"}, NodeNotReady},
		"unreachable":          {Status{InstanceState: "running", NodeReady: "True", Unreachable: true, PodState: "Running"}, NodeNotReady},
		"no machine, no node":  {Status{NodeReady: "Unknown", PodState: "Running"}, NodeNotReady},
		"crashloop":            {Status{InstanceState: "running", NodeReady: "True", PodState: "CrashLoopBackOff", Healthy: healthy(false)}, EtcdPodCrashlooping},
		"error":                {Status{NodeReady: "True", PodState: "Error"}, EtcdPodCrashlooping},
		"member down, no sign": {Status{InstanceState: "running", NodeReady: "True", PodState: "Running", Healthy: healthy(false)}, Unknown},
		"health unknown":       {Status{InstanceState: "running", NodeReady: "True", PodState: "Running"}, Unknown},
	}
	for name, c := range cases {
		if got := Diagnose(c.s); got != c.want {
			t.Errorf("%s: Diagnose = %s, want %s", name, got, c.want)
		}
	}
}

func TestDecide(t *testing.T) {
	stopped := Status{Node: "b", InstanceState: "stopped", NodeReady: "Unknown", PodState: "Running", MemberID: "id-b", Healthy: healthy(false)}
	crash := Status{Node: "c", InstanceState: "running", NodeReady: "True", PodState: "CrashLoopBackOff", MemberID: "id-c", Healthy: healthy(false)}
	cases := []struct {
		name          string
		r             Report
		verdict, tgt  string
		procedureHint string
	}{
		{"all healthy", Report{Members: []Status{ok("a"), ok("b"), ok("c")}}, VerdictHealthy, "", "nothing"},
		{"machine stopped", Report{Members: []Status{ok("a"), stopped, ok("c")}}, VerdictReplaceMember, "b", `2.4.1 "Replacing an unhealthy etcd member whose machine is not running`},
		{"crashloop", Report{Members: []Status{ok("a"), ok("b"), crash}}, VerdictReplaceMember, "c", `2.4.2 "Replacing an unhealthy etcd member whose etcd pod is crashlooping"`},
		{"quorum lost", Report{Members: []Status{ok("a"), stopped, crash}}, VerdictQuorumLost, "", "restore"},
		{"five members, two down", Report{Members: []Status{ok("a"), crash, ok("d"), stopped, ok("e")}}, VerdictReplaceMember, "b", "one at a time"},
		{"node without member", Report{Members: []Status{ok("a"), ok("b"), {Node: "c", NodeReady: "True", PodState: "Missing"}}}, VerdictReplaceMember, "c", "redeploy etcd"},
		{"nothing reachable", Report{Members: []Status{{Node: "a"}, {Node: "b"}}}, VerdictQuorumLost, "", "restore"},
	}
	for _, c := range cases {
		r := c.r
		Decide(&r)
		if r.Verdict != c.verdict || r.Target != c.tgt || !strings.Contains(r.Procedure, c.procedureHint) {
			t.Errorf("%s: verdict %s %s, procedure %q; want %s %s containing %q", c.name, r.Verdict, r.Target, r.Procedure, c.verdict, c.tgt, c.procedureHint)
		}
	}
}

// The advice names the command as the user ran it.
func TestDecideAdvisesTheCommandAsInvoked(t *testing.T) {
	stopped := Status{Node: "b", InstanceState: "stopped", NodeReady: "Unknown", PodState: "Running", MemberID: "id-b", Healthy: healthy(false)}
	for _, c := range []struct{ command, want string }{
		{"", "`oc recover member replace b`"},
		{"kubectl recover", "`kubectl recover member replace b`"},
		{"oc plugin recover", "`oc plugin recover member replace b`"},
	} {
		r := Report{Members: []Status{ok("a"), stopped, ok("c")}, Command: c.command}
		Decide(&r)
		if !strings.Contains(r.Procedure, c.want) {
			t.Errorf("command %q: procedure %q lacks %q", c.command, r.Procedure, c.want)
		}
	}
}
