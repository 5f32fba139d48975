package member

import (
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/oc-recover/oc-recover/pkg/exitcode"
)

// Target is what the pre-flight knows about the node whose member is to be
// replaced, beyond the member report.
type Target struct {
	Node string
	// NodeExists and ControlPlane describe the Node object.
	NodeExists, ControlPlane bool
	// Addresses are the Node's (and its Machine's) addresses.
	Addresses []string
	// MemberID, when the admin gives one (--member-id), must be the ID of
	// the member named after the node.
	MemberID string
	// Machine is the node's Machine ("" when none); MachineAPI tells whether
	// the Machine API manages the control plane (other control-plane nodes
	// have Machines).
	Machine    string
	MachineAPI bool
}

// Decision is the pre-flight's verdict on a replacement.
type Decision struct {
	Member    Status
	Procedure string
	// Override: with fewer than three healthy members left, the etcd
	// operator will not roll a revision unless its quorum guard is lifted.
	Override bool
	// HealthyAfter is the number of healthy voting members once the target
	// is removed, VotingAfter the number of voting members.
	HealthyAfter, VotingAfter int
}

// Judge decides, from the member report, whether the member of t.Node may
// be replaced and by which procedure. It changes nothing; every refusal
// names the problem and what to do instead.
func Judge(r *Report, t Target) (Decision, error) {
	var d Decision
	if !t.NodeExists {
		return d, exitcode.Usagef("there is no node %q; name a control-plane node (control-plane nodes: %s)", t.Node, strings.Join(nodeNames(r), ", "))
	}
	if !t.ControlPlane {
		return d, exitcode.Usagef("node %s is not a control-plane node (no node-role.kubernetes.io/master or node-role.kubernetes.io/control-plane label); only control-plane nodes run etcd members (control-plane nodes: %s)", t.Node, strings.Join(nodeNames(r), ", "))
	}
	if r.Verdict == VerdictQuorumLost {
		return d, fmt.Errorf("refusing to replace a member: %s", r.Procedure)
	}
	var target *Status
	for i := range r.Members {
		if r.Members[i].Node == t.Node {
			target = &r.Members[i]
		}
	}
	if target == nil || target.MemberID == "" {
		return d, fmt.Errorf("node %s has no etcd member, so there is none to replace; to have the etcd operator add one, run `%s redeploy etcd`", t.Node, r.command())
	}
	d.Member = *target
	if t.MemberID != "" && !strings.EqualFold(strings.TrimPrefix(t.MemberID, "0x"), target.MemberID) {
		return d, fmt.Errorf("refusing: --member-id %s does not match the member named %s, whose ID is now %s; the membership changed since you looked: check `%s member status`", t.MemberID, t.Node, target.MemberID, r.command())
	}
	if !peerOnNode(target.PeerURLs, t.Addresses) {
		return d, fmt.Errorf("refusing: the member named %s (ID %s) has peer URL %s, which is none of node %s's addresses (%s): the member's name no longer matches its node; check `%s member status` and remove it by hand if it is stale",
			t.Node, target.MemberID, strings.Join(target.PeerURLs, ","), t.Node, strings.Join(t.Addresses, ", "), r.command())
	}
	if len(r.ExtraMembers) > 0 {
		var extra []string
		for _, s := range r.ExtraMembers {
			extra = append(extra, s.MemberID+" ("+orDash(s.Node)+")")
		}
		return d, fmt.Errorf("refusing: etcd has members that match no control-plane node (%s); find out what they are before replacing another (never removed automatically)", strings.Join(extra, ", "))
	}
	voting, healthyOthers := 0, 0
	var unhealthyOthers []string
	for _, s := range r.Members {
		if s.MemberID == "" || s.Learner {
			continue
		}
		voting++
		if s.Node == t.Node {
			continue
		}
		if s.Healthy != nil && *s.Healthy {
			healthyOthers++
		}
		if s.Diagnosis != Healthy {
			unhealthyOthers = append(unhealthyOthers, s.Node)
		}
	}
	d.VotingAfter, d.HealthyAfter = voting-1, healthyOthers
	if healthyOthers <= (voting-1)/2 {
		return d, fmt.Errorf("refusing: removing the member of %s would lose quorum (%d healthy of the %d members left); etcd must keep a majority: bring the other members back first (`%s member status`)", t.Node, healthyOthers, voting-1, r.command())
	}
	if target.Healthy != nil && *target.Healthy {
		return d, fmt.Errorf("refusing: the member of %s (ID %s) is healthy as etcd reports it (diagnosis %s); a healthy member is never removed", t.Node, target.MemberID, target.Diagnosis)
	}
	if len(unhealthyOthers) > 0 {
		return d, fmt.Errorf("refusing: besides %s, the members of %s are unhealthy; replacing a member with another one down leaves no room for the etcd rollout that follows (each member restarts in turn): bring the others back, or restore from a backup", t.Node, strings.Join(unhealthyOthers, ", "))
	}
	switch target.Diagnosis {
	case MachineNotRunning, NodeNotReady:
		switch {
		case t.Machine != "":
			d.Procedure = ProcedureMachine
		case t.MachineAPI:
			return d, fmt.Errorf("refusing: the Machine API manages the other control-plane nodes, but no Machine has node %s as its nodeRef; find its Machine (`oc get machines -n openshift-machine-api -o wide`) before replacing it", t.Node)
		default:
			d.Procedure = ProcedureUPI
		}
	case EtcdPodCrashlooping:
		d.Procedure = ProcedureCrashloop
	default:
		return d, fmt.Errorf("refusing: the member of %s is unhealthy for a reason not diagnosed here (diagnosis %s, etcd pod %s); read its etcd pod's logs before replacing it", t.Node, target.Diagnosis, target.PodState)
	}
	d.Override = healthyOthers < 3
	return d, nil
}

// peerOnNode reports whether a peer URL's host is one of the node's
// addresses (true when the node's addresses are not known).
func peerOnNode(peerURLs, addresses []string) bool {
	if len(addresses) == 0 {
		return true
	}
	for _, p := range peerURLs {
		u, err := url.Parse(p)
		if err != nil {
			continue
		}
		host := u.Hostname()
		for _, a := range addresses {
			if strings.EqualFold(host, a) || (net.ParseIP(host) != nil && net.ParseIP(host).Equal(net.ParseIP(a))) {
				return true
			}
		}
	}
	return false
}

func nodeNames(r *Report) []string {
	var names []string
	for _, s := range r.Members {
		names = append(names, s.Node)
	}
	return names
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
