package member

import (
	"fmt"
	"sort"
)

// Diagnosis of one member, in the order OpenShift's documentation checks
// (OpenShift 4.5 documentation, Backup and restore, 2.3 "Determining the
// state of the unhealthy etcd member").
const (
	Healthy             = "Healthy"
	MachineNotRunning   = "MachineNotRunning"
	NodeNotReady        = "NodeNotReady"
	EtcdPodCrashlooping = "EtcdPodCrashlooping"
	Unknown             = "Unknown"
)

// Verdicts for the whole cluster.
const (
	VerdictHealthy       = "Healthy"
	VerdictReplaceMember = "ReplaceMember"
	VerdictQuorumLost    = "QuorumLost"
)

// Status is one control-plane node's etcd member and what it runs on.
type Status struct {
	Node string `json:"node"`

	Machine       string `json:"machine,omitempty"`
	MachinePhase  string `json:"machinePhase,omitempty"`
	InstanceState string `json:"instanceState,omitempty"`

	NodeReady   string `json:"nodeReady"` // True, False, Unknown, or "" (no Node)
	Unreachable bool   `json:"unreachable"`

	Pod      string `json:"pod,omitempty"`
	PodState string `json:"podState"` // Running, CrashLoopBackOff, Error, Pending, Missing, ...
	Restarts int32  `json:"restarts"`

	MemberID    string   `json:"memberID,omitempty"`
	PeerURLs    []string `json:"peerURLs,omitempty"`
	ClientURLs  []string `json:"clientURLs,omitempty"`
	Learner     bool     `json:"learner,omitempty"`
	Healthy     *bool    `json:"healthy"` // nil: could not be told
	HealthError string   `json:"healthError,omitempty"`

	Diagnosis string `json:"diagnosis"`
}

// Report is the state of every member and the verdict.
type Report struct {
	// EtcdMembersAvailable is the etcd operator's own summary.
	EtcdMembersAvailable string   `json:"etcdMembersAvailable,omitempty"`
	Members              []Status `json:"members"`
	// ExtraMembers are etcd members that match no control-plane node: left
	// over from an earlier replacement; reported, never removed silently.
	ExtraMembers []Status `json:"extraMembers,omitempty"`
	// ReachedThrough is the etcd pod the member list and health came from.
	ReachedThrough string `json:"reachedThrough,omitempty"`
	Verdict        string `json:"verdict"`
	Target         string `json:"target,omitempty"`
	Procedure      string `json:"procedure"`

	// Detail is what Gather read beyond membership when asked to.
	Detail *Detail `json:"-"`

	// Command is how the user runs the plugin ("oc recover", "kubectl
	// recover"), for the commands Procedure advises; empty means "oc recover".
	Command string `json:"-"`
}

// command is r.Command, or "oc recover" when the caller gave none.
func (r *Report) command() string {
	if r.Command == "" {
		return "oc recover"
	}
	return r.Command
}

// Diagnose says why a member is unhealthy, checking in the documentation's
// order (see the constants above):
// is the machine running, is the node ready, is the etcd pod crashlooping.
func Diagnose(s Status) string {
	switch {
	case s.InstanceState != "" && s.InstanceState != "running":
		return MachineNotRunning
	case s.NodeReady != "True" || s.Unreachable:
		return NodeNotReady
	case s.PodState == "CrashLoopBackOff" || s.PodState == "Error":
		return EtcdPodCrashlooping
	case s.Healthy != nil && *s.Healthy && s.PodState == "Running":
		return Healthy
	default:
		return Unknown
	}
}

// Decide fills in each member's diagnosis and the cluster's verdict and
// procedure.
func Decide(r *Report) {
	voting, healthy := 0, 0
	var unhealthy []Status
	for i := range r.Members {
		s := &r.Members[i]
		s.Diagnosis = Diagnose(*s)
		if s.MemberID == "" {
			continue // a control-plane node without a member
		}
		if s.Learner {
			continue
		}
		voting++
		// Quorum is etcd's own view: a member whose node is NotReady may
		// still serve.
		if s.Healthy != nil && *s.Healthy {
			healthy++
		}
		if s.Diagnosis != Healthy {
			unhealthy = append(unhealthy, *s)
		}
	}
	for _, s := range r.ExtraMembers {
		if !s.Learner {
			voting++
			if s.Healthy != nil && *s.Healthy {
				healthy++
			}
		}
	}
	sort.SliceStable(unhealthy, func(i, j int) bool { return rank(unhealthy[i].Diagnosis) < rank(unhealthy[j].Diagnosis) })
	switch {
	case voting == 0 || healthy <= voting/2:
		r.Verdict = VerdictQuorumLost
		r.Procedure = fmt.Sprintf("etcd has lost quorum (%d of %d members healthy): replacing a member cannot help: restore the cluster from a backup, by OpenShift's procedure (OpenShift 4.5 documentation, Backup and restore, 5.3 \"Restoring to a previous cluster state\")", healthy, voting)
	case len(unhealthy) == 0 && len(r.Members) > 0 && allNodesHaveMembers(r):
		r.Verdict = VerdictHealthy
		r.Procedure = "nothing to do"
	case len(unhealthy) == 0:
		r.Verdict = VerdictReplaceMember
		for _, s := range r.Members {
			if s.MemberID == "" {
				r.Target = s.Node
				break
			}
		}
		r.Procedure = fmt.Sprintf("control-plane node %s has no etcd member: redeploy etcd so the operator adds it (`%s redeploy etcd`)", r.Target, r.command())
	default:
		t := unhealthy[0]
		r.Verdict, r.Target = VerdictReplaceMember, t.Node
		switch t.Diagnosis {
		case MachineNotRunning, NodeNotReady:
			r.Procedure = fmt.Sprintf("replace the member of %s, whose machine is not running or whose node is not ready (OpenShift 4.5 documentation, Backup and restore, 2.4.1 \"Replacing an unhealthy etcd member whose machine is not running or whose node is not ready\"): `%s member replace %s`", t.Node, r.command(), t.Node)
		case EtcdPodCrashlooping:
			r.Procedure = fmt.Sprintf("replace the member of %s, whose etcd pod is crashlooping (OpenShift 4.5 documentation, Backup and restore, 2.4.2 \"Replacing an unhealthy etcd member whose etcd pod is crashlooping\"): `%s member replace %s`", t.Node, r.command(), t.Node)
		default:
			r.Procedure = fmt.Sprintf("the member of %s is unhealthy for a reason not diagnosed here: look at its etcd pod's logs before replacing it", t.Node)
		}
		if len(unhealthy) > 1 {
			r.Procedure += fmt.Sprintf("; %d members are unhealthy: replace them one at a time, and only while quorum holds", len(unhealthy))
		}
	}
}

func allNodesHaveMembers(r *Report) bool {
	for _, s := range r.Members {
		if s.MemberID == "" {
			return false
		}
	}
	return true
}

// rank orders unhealthy members by how certain their diagnosis is.
func rank(d string) int {
	switch d {
	case MachineNotRunning:
		return 0
	case NodeNotReady:
		return 1
	case EtcdPodCrashlooping:
		return 2
	}
	return 3
}
