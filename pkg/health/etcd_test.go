package health

import (
	"errors"
	"strings"
	"testing"
)

func etcdMember(name string, id, leader uint64, size, inUse int64) EtcdMember {
	return EtcdMember{Name: name, ID: id, Leader: leader, Version: "3.5.21", DBSize: size, DBSizeInUse: inUse, RaftIndex: 500, RaftAppliedIndex: 500}
}

func healthyMembers() []EtcdMember {
	return []EtcdMember{etcdMember("master-0", 1, 2, 200<<20, 190<<20), etcdMember("master-1", 2, 2, 200<<20, 190<<20), etcdMember("master-2", 3, 2, 200<<20, 190<<20)}
}

func evidence(r Result) string { return strings.Join(r.Evidence, "\n") }

func TestEtcdStatus(t *testing.T) {
	for _, tc := range []struct {
		name     string
		change   func([]EtcdMember)
		severity Severity
		evidence string
	}{
		{"one leader", func([]EtcdMember) {}, OK, ""},
		{"no leader", func(ms []EtcdMember) {
			for i := range ms {
				ms[i].Leader = 0
			}
		}, Fail, "no member reports a leader"},
		{"two leaders", func(ms []EtcdMember) { ms[0].Leader = 1 }, Fail, "members disagree on the leader: 1 (master-0); 2 (master-1, master-2)"},
		{"a member not reached", func(ms []EtcdMember) { ms[2].Err = errors.New("context deadline exceeded") }, Fail, "master-2: not reached: context deadline exceeded"},
		{"a member reports errors", func(ms []EtcdMember) { ms[1].Errors = []string{"etcdserver: mvcc: database space exceeded"} }, Fail, "master-1 reports: etcdserver: mvcc: database space exceeded"},
		{"versions differ", func(ms []EtcdMember) { ms[0].Version = "3.5.18" }, Warn, "etcd versions differ: 3.5.18 (master-0); 3.5.21 (master-1, master-2)"},
		{"a member trails in applying", func(ms []EtcdMember) { ms[1].RaftIndex = 2501 }, Warn, "master-1 has applied 2001 raft entries fewer than it holds"},
		{"a small lag is normal", func(ms []EtcdMember) { ms[1].RaftIndex = 1500 }, OK, ""},
	} {
		ms := healthyMembers()
		tc.change(ms)
		r := EtcdStatus(ms)
		if r.Severity != tc.severity || !strings.Contains(evidence(r), tc.evidence) {
			t.Errorf("%s: %s %q, evidence:\n%s\nwant %s with %q", tc.name, r.Severity, r.Summary, evidence(r), tc.severity, tc.evidence)
		}
		if (r.Severity == Fail) != (r.Fix != "") {
			t.Errorf("%s: severity %s with fix %q: a FAIL says what to do, an OK nothing", tc.name, r.Severity, r.Fix)
		}
	}
}

// The levels of OpenShift's etcdDatabaseQuotaLowSpace alert: 65 % warns,
// 85 % fails, on the largest member.
func TestEtcdQuota(t *testing.T) {
	quota := int64(1000 << 20)
	for _, tc := range []struct {
		size     int64
		severity Severity
	}{{640 << 20, OK}, {650 << 20, Warn}, {849 << 20, Warn}, {850 << 20, Fail}, {1000 << 20, Fail}} {
		ms := healthyMembers()
		ms[1].DBSize = tc.size
		if r := EtcdQuota(ms, quota); r.Severity != tc.severity {
			t.Errorf("database %d MiB of 1000 MiB: %s (%s), want %s", tc.size>>20, r.Severity, r.Summary, tc.severity)
		}
	}
	// Without a quota read from etcd.env, the operator's default of 8 GiB.
	ms := healthyMembers()
	ms[0].DBSize = 6 << 30
	if r := EtcdQuota(ms, 0); r.Severity != Warn || !strings.Contains(evidence(r), "master-0: database 6144 MiB of quota 8192 MiB (75 %, etcdDatabaseQuotaLowSpace warning)") {
		t.Errorf("6 GiB with the default quota: %s, evidence:\n%s", r.Severity, evidence(r))
	}
	// A member not reached is EtcdStatus's to report, not a 0 % here.
	ms = healthyMembers()
	ms[2].Err = errors.New("refused")
	if r := EtcdQuota(ms, quota); strings.Contains(evidence(r), "master-2") {
		t.Errorf("a member not reached is judged on its size:\n%s", evidence(r))
	}
}

// The etcd operator's defragmentation controller: 45 % free pages or more,
// on a database of 100 MiB or more.
func TestEtcdFragmentation(t *testing.T) {
	for _, tc := range []struct {
		name        string
		size, inUse int64
		severity    Severity
	}{
		{"little free space", 400 << 20, 380 << 20, OK},
		{"just below 45 %", 1000 << 20, 551 << 20, OK},
		{"45 %", 1000 << 20, 550 << 20, Warn},
		{"fragmented but small", 99 << 20, 10 << 20, OK},
		{"fragmented at 100 MiB", 100 << 20, 10 << 20, Warn},
	} {
		ms := healthyMembers()
		ms[0].DBSize, ms[0].DBSizeInUse = tc.size, tc.inUse
		r := EtcdFragmentation(ms)
		if r.Severity != tc.severity {
			t.Errorf("%s: %s (%s), want %s", tc.name, r.Severity, r.Summary, tc.severity)
		}
		if tc.severity == Warn && r.Summary != "fragmented: master-0" {
			t.Errorf("%s: summary %q, want the member named", tc.name, r.Summary)
		}
	}
}

func TestEtcdAlarms(t *testing.T) {
	if r := EtcdAlarms(nil); r.Severity != OK {
		t.Errorf("no alarm: %s", r.Severity)
	}
	r := EtcdAlarms([]EtcdAlarm{{Member: "master-1", Alarm: "NOSPACE"}})
	if r.Severity != Fail || evidence(r) != "master-1: NOSPACE" || !strings.Contains(r.Fix, "disarm") {
		t.Errorf("NOSPACE: %s %q fix %q", r.Severity, evidence(r), r.Fix)
	}
	r = EtcdAlarms([]EtcdAlarm{{Member: "master-1", Alarm: "NOSPACE"}, {Member: "master-2", Alarm: "CORRUPT"}})
	if r.Severity != Fail || !strings.Contains(r.Fix, "member replace") {
		t.Errorf("CORRUPT: %s fix %q, want the member replaced", r.Severity, r.Fix)
	}
}

func TestReportVerdictIsTheWorstCheck(t *testing.T) {
	for _, tc := range []struct {
		severities []Severity
		verdict    Severity
	}{{nil, OK}, {[]Severity{OK, OK}, OK}, {[]Severity{OK, Warn, OK}, Warn}, {[]Severity{Warn, Fail, OK}, Fail}} {
		var rs []Result
		for _, s := range tc.severities {
			rs = append(rs, Result{Severity: s})
		}
		if got := NewReport(rs).Verdict; got != tc.verdict {
			t.Errorf("%v: verdict %s, want %s", tc.severities, got, tc.verdict)
		}
	}
	if r := CouldNotRun("etcd.status", errors.New("no etcd pod running")); r.Severity != Fail || r.Summary != "could not run: no etcd pod running" {
		t.Errorf("CouldNotRun = %+v", r)
	}
}

// A raised alarm shows in every member's status errors; it is the alarm
// check's to judge, and the leadership stays sound.
func TestEtcdStatusLeavesAlarmsToTheAlarmCheck(t *testing.T) {
	members := healthyMembers()
	for i := range members {
		members[i].Errors = []string{"memberID:1 alarm:NOSPACE "}
	}
	if r := EtcdStatus(members); r.Severity != OK {
		t.Errorf("alarm errors only: %s %v", r.Severity, r.Evidence)
	}
	members[0].Errors = append(members[0].Errors, "raft: stopped")
	if r := EtcdStatus(members); r.Severity != Fail || !strings.Contains(evidence(r), "master-0 reports: raft: stopped") || strings.Contains(evidence(r), "NOSPACE") {
		t.Errorf("another error: %s %v", r.Severity, r.Evidence)
	}
}
