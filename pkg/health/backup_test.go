package health

import (
	"strings"
	"testing"
	"time"

	"github.com/oc-recover/oc-recover/pkg/backup"
	"github.com/oc-recover/oc-recover/pkg/etcd"
)

const (
	clusterID = "5f3b4b8c-0d5e-4d4f-9a55-6c1f1c0b8a11"
	version   = "4.14.8"
)

// taken is a backup made by oc-recover age ago, of this cluster and
// release, test-restored.
func taken(dir string, age time.Duration, change ...func(*backup.Manifest)) backup.Entry {
	ts := now.Add(-age)
	m := &backup.Manifest{ClusterID: clusterID, Version: version, StartedAt: ts.Add(-2 * time.Minute), CompletedAt: ts,
		Files: []backup.File{{Name: "snapshot_x.db", Kind: backup.KindSnapshot}, {Name: "static_kuberesources_x.tar.gz", Kind: backup.KindStaticResources}}}
	m.Etcd.RestoreTested = true
	for _, c := range change {
		c(m)
	}
	return backup.Entry{Dir: dir, Manifest: m}
}

func TestLocalBackup(t *testing.T) {
	for _, tc := range []struct {
		name      string
		entries   []backup.Entry
		encrypted bool
		severity  Severity
		evidence  string
		fix       string
	}{
		{"a fresh backup", []backup.Entry{taken("b/new", 23*time.Hour)}, false, OK, "", ""},
		{"none", nil, false, Fail, "", "oc recover backup --output-dir"},
		{"only other clusters and releases", []backup.Entry{
			taken("b/other", time.Hour, func(m *backup.Manifest) { m.ClusterID = "0000" }),
			taken("b/old-release", time.Hour, func(m *backup.Manifest) { m.Version = "4.14.7" }),
			{Dir: "b/by-hand", Problem: "no backup.json: not verified by oc-recover"},
		}, false, Fail,
			"b/by-hand: no backup.json: not verified by oc-recover\nb/old-release: taken on OpenShift 4.14.7, the cluster runs 4.14.8: a restore needs the same z-stream\nb/other: a backup of cluster 0000, not of this one (" + clusterID + ")",
			"oc recover backup --output-dir"},
		{"older than a day", []backup.Entry{taken("b/old", 25*time.Hour)}, false, Warn, "b/old: taken 25h ago, more than 24h", "oc recover backup --output-dir"},
		{"the newest restorable one counts", []backup.Entry{taken("b/old", 72*time.Hour), taken("b/new", time.Hour), taken("b/newer-other-release", time.Minute, func(m *backup.Manifest) { m.Version = "4.15.0" })}, false, OK, "", ""},
		{"dirty", []backup.Entry{taken("b/dirty", time.Hour, func(m *backup.Manifest) { m.Dirty = true })}, false, Warn, "b/dirty: taken during a rollout (__POSSIBLY_DIRTY__)", "while no static-pod operator is rolling out"},
		{"not test-restored", []backup.Entry{taken("b/new", time.Hour, func(m *backup.Manifest) { m.Etcd.RestoreTested = false })}, false, Warn, "b/new: its snapshot was never test-restored", "oc recover backup verify b/new"},
		{"encryption on, backup without", []backup.Entry{taken("b/new", time.Hour)}, true, Warn, "b/new: taken while etcd encryption was off", "oc recover backup --output-dir"},
		{"a snapshot of another cluster, whatever backup.json says", []backup.Entry{taken("b/mixed", time.Hour, func(m *backup.Manifest) { m.Snapshot = &etcd.SnapshotCluster{ClusterID: "0000", Version: version} })}, false, Fail,
			"b/mixed: its snapshot is of cluster 0000, not of this one", "oc recover backup --output-dir"},
		{"a snapshot of another release, whatever backup.json says", []backup.Entry{taken("b/mixed", time.Hour, func(m *backup.Manifest) { m.Snapshot = &etcd.SnapshotCluster{ClusterID: clusterID, Version: "4.14.7"} })}, false, Fail,
			"b/mixed: its snapshot was taken on OpenShift 4.14.7", "oc recover backup --output-dir"},
		{"certificates expired since", []backup.Entry{taken("b/new", time.Hour, func(m *backup.Manifest) {
			m.Resources = &backup.ResourcesReport{Certificates: 9, FirstExpiry: now.Add(-time.Minute), FirstExpiring: "static-pod-resources/kube-apiserver-pod-7/secrets/etcd-client/tls.crt (system:etcd-client)"}
		})}, false, Warn, "b/new: certificates in it have expired since (static-pod-resources/kube-apiserver-pod-7/secrets/etcd-client/tls.crt", ""},
		{"certificates still valid", []backup.Entry{taken("b/new", time.Hour, func(m *backup.Manifest) {
			m.Resources = &backup.ResourcesReport{Certificates: 9, FirstExpiry: now.Add(time.Hour), FirstExpiring: "x"}
		})}, false, OK, "", ""},
		{"encryption on, backup with", []backup.Entry{taken("b/new", time.Hour, func(m *backup.Manifest) { m.EncryptionType = "aescbc" })}, true, OK, "", ""},
	} {
		r := LocalBackup(tc.entries, clusterID, version, tc.encrypted, now, 0)
		if r.Severity != tc.severity || !strings.Contains(evidence(r), tc.evidence) || (tc.evidence == "") != (len(r.Evidence) == 0) || !strings.Contains(r.Fix, tc.fix) || (tc.fix == "") != (r.Fix == "") {
			t.Errorf("%s: %+v, want %s with %q, fix %q", tc.name, r, tc.severity, tc.evidence, tc.fix)
		}
	}
	if r := LocalBackup([]backup.Entry{taken("b/new", time.Hour)}, clusterID, version, false, now, 0); r.Summary != "newest restorable backup: b/new, 1h old" {
		t.Errorf("summary: %q", r.Summary)
	}
	if r := LocalBackup([]backup.Entry{taken("b/new", 3*time.Hour)}, clusterID, version, false, now, 2*time.Hour); r.Severity != Warn {
		t.Errorf("--max-backup-age 2h: %+v", r)
	}
}
