package health

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// EtcdMember is what one etcd endpoint reports about itself (the
// Maintenance Status call), or the error reaching it.
type EtcdMember struct {
	Name             string
	ID               uint64
	Version          string
	DBSize           int64
	DBSizeInUse      int64
	Leader           uint64
	RaftIndex        uint64
	RaftAppliedIndex uint64
	Errors           []string
	Err              error
}

// Thresholds OpenShift itself uses: the etcd operator's default backend
// quota (ETCD_QUOTA_BACKEND_BYTES in etcd.env), the levels of the
// etcdDatabaseQuotaLowSpace alert (info at 65 %, warning at 75 %, critical
// at 85 % since 4.16; earlier releases alert only at 95 %, too late to
// plan for), and the defragmentation controller's
// trigger (a member fragmented by 45 % or more, once its database is
// 100 MiB or more).
const (
	DefaultQuotaBytes        int64 = 8 << 30
	quotaWarnPercent               = 65
	quotaAlertWarningPercent       = 75
	quotaFailPercent               = 85
	fragmentedWarnPercent          = 45
	fragmentedMinDBSize      int64 = 100 << 20
	// appliedLagWarn is how far a member may trail in applying the raft
	// log it has before it is reported as lagging.
	appliedLagWarn = 1000
)

// EtcdStatus judges leadership and errors: FAIL without a leader, with
// members that disagree on it, with a member that reports errors or cannot
// be reached; WARN when members run different etcd versions or one trails
// in applying its raft log.
func EtcdStatus(members []EtcdMember) Result {
	r := Result{ID: "etcd.status", Severity: OK}
	leaders := map[uint64][]string{}
	versions := map[string][]string{}
	for _, m := range members {
		switch {
		case m.Err != nil:
			r.Severity = Fail
			r.Evidence = append(r.Evidence, fmt.Sprintf("%s: not reached: %v", m.Name, m.Err))
			continue
		case len(notAlarms(m.Errors)) > 0:
			r.Severity = Fail
			r.Evidence = append(r.Evidence, fmt.Sprintf("%s reports: %s", m.Name, strings.Join(notAlarms(m.Errors), "; ")))
		}
		leaders[m.Leader] = append(leaders[m.Leader], m.Name)
		versions[m.Version] = append(versions[m.Version], m.Name)
		if lag := int64(m.RaftIndex) - int64(m.RaftAppliedIndex); lag > appliedLagWarn {
			r.Severity = Worse(r.Severity, Warn)
			r.Evidence = append(r.Evidence, fmt.Sprintf("%s has applied %d raft entries fewer than it holds", m.Name, lag))
		}
	}
	delete(leaders, 0)
	switch {
	case len(leaders) == 0 && len(members) > 0:
		r.Severity = Fail
		r.Evidence = append(r.Evidence, "no member reports a leader")
	case len(leaders) > 1:
		r.Severity = Fail
		r.Evidence = append(r.Evidence, "members disagree on the leader: "+describe(leaders, func(id uint64) string { return fmt.Sprintf("%x", id) }))
	}
	if len(versions) > 1 {
		r.Severity = Worse(r.Severity, Warn)
		r.Evidence = append(r.Evidence, "etcd versions differ: "+describe(versions, func(v string) string { return v }))
	}
	switch r.Severity {
	case OK:
		r.Summary = fmt.Sprintf("%d members, one leader", len(members))
	case Warn:
		r.Summary = "members agree on a leader, but not on everything"
	default:
		r.Summary = "etcd has no sound leadership, or a member reports errors"
		r.Fix = "see which member is unhealthy with `oc recover member status`, and replace it with `oc recover member replace <node>`"
	}
	return r
}

// EtcdQuota judges each member's database size against the backend quota
// (quota <= 0 means the default): FAIL from 85 %, WARN from 65 %. A
// database that reaches the quota raises the NOSPACE alarm and etcd takes
// no more writes.
func EtcdQuota(members []EtcdMember, quota int64) Result {
	if quota <= 0 {
		quota = DefaultQuotaBytes
	}
	r := Result{ID: "etcd.quota", Severity: OK}
	worst := 0.0
	for _, m := range members {
		if m.Err != nil {
			continue
		}
		pct := 100 * float64(m.DBSize) / float64(quota)
		worst = max(worst, pct)
		level := ""
		switch {
		case pct >= quotaFailPercent:
			level = ", etcdDatabaseQuotaLowSpace critical"
		case pct >= quotaAlertWarningPercent:
			level = ", etcdDatabaseQuotaLowSpace warning"
		case pct >= quotaWarnPercent:
			level = ", etcdDatabaseQuotaLowSpace info"
		}
		r.Evidence = append(r.Evidence, fmt.Sprintf("%s: database %s of quota %s (%.0f %%%s)", m.Name, mib(m.DBSize), mib(quota), pct, level))
		switch {
		case pct >= quotaFailPercent:
			r.Severity = Fail
		case pct >= quotaWarnPercent:
			r.Severity = Worse(r.Severity, Warn)
		}
	}
	r.Summary = fmt.Sprintf("largest database at %.0f %% of the quota", worst)
	if r.Severity != OK {
		r.Fix = "defragment the members and find what fills etcd (OpenShift documentation, Scalability and performance, \"Defragmenting etcd data\")"
	}
	return r
}

// EtcdFragmentation warns, as the etcd operator's defragmentation
// controller would act, when a member's database is 100 MiB or more and
// 45 % or more of it is free pages.
func EtcdFragmentation(members []EtcdMember) Result {
	r := Result{ID: "etcd.fragmentation", Severity: OK, Summary: "no member needs defragmenting"}
	var fragmented []string
	for _, m := range members {
		if m.Err != nil || m.DBSize == 0 {
			continue
		}
		// Free pages as a percentage, to the hundredth, as the controller
		// judges it (so 550 MiB in use of 1000 is 45 %, not 44.999...).
		pct := math.Round(float64(m.DBSize-m.DBSizeInUse)*10000/float64(m.DBSize)) / 100
		r.Evidence = append(r.Evidence, fmt.Sprintf("%s: %s in use of %s (%.0f %% fragmented)", m.Name, mib(m.DBSizeInUse), mib(m.DBSize), pct))
		if pct >= fragmentedWarnPercent && m.DBSize >= fragmentedMinDBSize {
			fragmented = append(fragmented, m.Name)
		}
	}
	if len(fragmented) > 0 {
		r.Severity = Warn
		r.Summary = "fragmented: " + strings.Join(fragmented, ", ")
		r.Fix = "defragment them one at a time, the leader last (OpenShift documentation, Scalability and performance, \"Defragmenting etcd data\")"
	}
	return r
}

// EtcdAlarm is an alarm a member raised: NOSPACE or CORRUPT.
type EtcdAlarm struct {
	Member string
	Alarm  string
}

// EtcdAlarms fails on any alarm: NOSPACE stops every write until the
// database is made smaller and the alarm disarmed; CORRUPT means a member's
// data can no longer be trusted.
func EtcdAlarms(alarms []EtcdAlarm) Result {
	r := Result{ID: "etcd.alarms", Severity: OK, Summary: "no alarm"}
	if len(alarms) == 0 {
		return r
	}
	r.Severity = Fail
	corrupt := false
	for _, a := range alarms {
		r.Evidence = append(r.Evidence, fmt.Sprintf("%s: %s", a.Member, a.Alarm))
		corrupt = corrupt || a.Alarm == "CORRUPT"
	}
	r.Summary = fmt.Sprintf("%d alarm(s) raised", len(alarms))
	if corrupt {
		r.Fix = "replace the corrupt member with `oc recover member replace <node>`; with no sound member left, restore from a backup"
	} else {
		r.Fix = "defragment, then disarm the alarm (OpenShift documentation, Scalability and performance, \"Defragmenting etcd data\")"
	}
	return r
}

// notAlarms are a member's errors but those that only repeat a raised
// alarm ("memberID:... alarm:NOSPACE"), which etcd.alarms judges.
func notAlarms(errs []string) []string {
	var out []string
	for _, e := range errs {
		if !strings.Contains(e, "alarm:") {
			out = append(out, e)
		}
	}
	return out
}

func mib(n int64) string { return fmt.Sprintf("%d MiB", n>>20) }

// describe lists the groups of a map as "key (name, name); key (name)",
// by key.
func describe[K comparable](groups map[K][]string, format func(K) string) string {
	var parts []string
	for k, names := range groups {
		sort.Strings(names)
		parts = append(parts, fmt.Sprintf("%s (%s)", format(k), strings.Join(names, ", ")))
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}
