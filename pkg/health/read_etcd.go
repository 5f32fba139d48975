package health

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/oc-recover/oc-recover/pkg/etcd"
	"github.com/oc-recover/oc-recover/pkg/member"
)

var etcdIDs = []string{"etcd.members", "etcd.health", "etcd.status", "etcd.quota", "etcd.fragmentation", "etcd.alarms"}

// etcdChecks reads etcd as `oc recover member status` does (the members
// against the control-plane nodes, their health), plus every member's
// status and the alarms, through one etcd pod.
func etcdChecks(ctx context.Context, c *cluster) []Result {
	nodes, err := c.Nodes(ctx)
	if err != nil {
		return failAll(err, etcdIDs...)
	}
	machines, err := c.Machines(ctx)
	if err != nil {
		return failAll(err, etcdIDs...)
	}
	etcdCR, _ := c.EtcdCR(ctx) // without it, the report lacks only the operator's summary
	read := &member.Read{Nodes: nodes, Machines: machines, Etcd: etcdCR}
	r, err := member.Gather(ctx, member.Clients{Kube: c.Kube, Machine: c.Machine, Operator: c.Operator, REST: c.REST, Detail: true, Read: read}, "oc recover")
	if err != nil {
		return failAll(err, etcdIDs...)
	}
	out := []Result{EtcdMembers(r), EtcdHealth(r)}
	d := r.Detail
	if d.StatusErr != nil {
		out = append(out, failAll(d.StatusErr, "etcd.status", "etcd.quota", "etcd.fragmentation")...)
	} else {
		members := etcdMembers(d)
		out = append(out, EtcdStatus(members), EtcdQuota(members, quotaOf(d.Pods)), EtcdFragmentation(members))
	}
	if d.AlarmsErr != nil {
		return append(out, CouldNotRun("etcd.alarms", d.AlarmsErr))
	}
	names := map[uint64]string{}
	for _, m := range d.Members {
		names[m.ID] = m.Name
	}
	var alarms []EtcdAlarm
	for _, a := range d.Alarms {
		name := names[a.MemberID]
		if name == "" {
			name = "member " + etcd.MemberID(a.MemberID)
		}
		alarms = append(alarms, EtcdAlarm{Member: name, Alarm: a.Alarm})
	}
	return append(out, EtcdAlarms(alarms))
}

// etcdMembers are the voting members' statuses, named, in name order.
func etcdMembers(d *member.Detail) []EtcdMember {
	var out []EtcdMember
	for _, m := range d.Members {
		if m.IsLearner || len(m.ClientURLs) == 0 {
			continue
		}
		s, ok := d.Status[m.ClientURLs[0]]
		em := EtcdMember{Name: m.Name, ID: m.ID}
		switch {
		case !ok:
			em.Err = fmt.Errorf("no status reported")
		case s.Err != "":
			em.Err = fmt.Errorf("%s", s.Err)
		default:
			em.Version, em.DBSize, em.DBSizeInUse, em.Leader = s.Version, s.DBSize, s.DBSizeInUse, s.Leader
			em.RaftIndex, em.RaftAppliedIndex, em.Errors = s.RaftIndex, s.RaftAppliedIndex, s.Errors
		}
		out = append(out, em)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// quotaOf is the backend quota etcd runs with: ETCD_QUOTA_BACKEND_BYTES
// in the etcd container of the etcd pods, which the operator computes
// (the smallest if the pods differ mid-rollout); 0, the default, when no
// pod says.
func quotaOf(pods []corev1.Pod) int64 {
	var quota int64
	for _, p := range pods {
		for _, ctr := range p.Spec.Containers {
			if ctr.Name != "etcd" {
				continue
			}
			for _, e := range ctr.Env {
				if e.Name != "ETCD_QUOTA_BACKEND_BYTES" {
					continue
				}
				if q, err := strconv.ParseInt(e.Value, 10, 64); err == nil && q > 0 && (quota == 0 || q < quota) {
					quota = q
				}
			}
		}
	}
	return quota
}

// EtcdMembers judges the membership as `oc recover member status` does:
// FAIL when quorum is lost or a member needs replacing (the fix is that
// command's procedure), or a member matches no control-plane node; WARN
// for a learner.
func EtcdMembers(r *member.Report) Result {
	res := Result{ID: "etcd.members", Severity: OK, Summary: fmt.Sprintf("%d members for %d control-plane nodes", countMembers(r), len(r.Members))}
	for _, s := range r.Members {
		switch {
		case s.MemberID == "":
			res.Evidence = append(res.Evidence, fmt.Sprintf("%s: no etcd member", s.Node))
		case s.Diagnosis != member.Healthy:
			res.Evidence = append(res.Evidence, fmt.Sprintf("%s: %s (node %s, etcd pod %s)", s.Node, s.Diagnosis, orDash(s.NodeReady), orDash(s.PodState)))
		}
		if s.Learner {
			res.Severity = Worse(res.Severity, Warn)
			res.Evidence = append(res.Evidence, fmt.Sprintf("%s: still a learner", s.Node))
		}
	}
	for _, s := range r.ExtraMembers {
		res.Severity = Fail
		res.Evidence = append(res.Evidence, fmt.Sprintf("member %s (%s) matches no control-plane node", s.MemberID, orDash(s.Node)))
	}
	switch r.Verdict {
	case member.VerdictHealthy:
	case member.VerdictQuorumLost:
		res.Severity, res.Summary = Fail, "etcd has lost quorum"
		res.Fix = r.Procedure
	default:
		res.Severity = Fail
		res.Fix = r.Procedure
	}
	if res.Severity == Fail && res.Fix == "" {
		res.Fix = "see `oc recover member status`"
	}
	return res
}

// EtcdHealth is each member's health as etcd reports it (a linearizable
// read through the member): FAIL for any member not healthy.
func EtcdHealth(r *member.Report) Result {
	res := Result{ID: "etcd.health", Severity: OK}
	healthy := 0
	for _, s := range append(append([]member.Status{}, r.Members...), r.ExtraMembers...) {
		if s.MemberID == "" || s.Learner {
			continue
		}
		if s.Healthy != nil && *s.Healthy {
			healthy++
			if strings.HasPrefix(s.HealthError, member.AlarmHealthPrefix) {
				res.Evidence = append(res.Evidence, fmt.Sprintf("%s answers; %s (see etcd.alarms)", orDash(s.Node), strings.TrimSpace(s.HealthError)))
			}
			continue
		}
		res.Severity = Fail
		why := s.HealthError
		if why == "" {
			why = "not healthy"
		}
		res.Evidence = append(res.Evidence, fmt.Sprintf("%s: %s", orDash(s.Node), why))
	}
	res.Summary = fmt.Sprintf("%d of %d voting members healthy", healthy, countVoting(r))
	if res.Severity == Fail {
		res.Fix = "`oc recover member status` says which member to replace and how"
	}
	return res
}

func countMembers(r *member.Report) int {
	n := len(r.ExtraMembers)
	for _, s := range r.Members {
		if s.MemberID != "" {
			n++
		}
	}
	return n
}

func countVoting(r *member.Report) int {
	n := 0
	for _, s := range append(append([]member.Status{}, r.Members...), r.ExtraMembers...) {
		if s.MemberID != "" && !s.Learner {
			n++
		}
	}
	return n
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
