package health

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/oc-recover/oc-recover/pkg/backup"
)

// DefaultMaxBackupAge is how old the newest backup may be before
// backup.local warns: a day, as member replace asks of the backup it
// requires.
const DefaultMaxBackupAge = 24 * time.Hour

// LocalBackup judges the backups in a directory (entries is backup.List's
// answer) as a restore of this cluster would use them: FAIL when there is
// none, or none restorable, since a restore takes only a backup of the same
// cluster (clusterID) and the same z-stream release (version) and needs its
// backup.json to tell; WARN when the newest restorable one is older than
// maxAge (<= 0: DefaultMaxBackupAge), was taken during a rollout, was not
// test-restored, or (with encrypted, etcd encryption on) was taken without
// encryption, so that its archive was not checked for the encryption
// configuration the restored secrets need. That the files are still whole
// is for `oc recover backup verify`, which reads them.
func LocalBackup(entries []backup.Entry, clusterID, version string, encrypted bool, now time.Time, maxAge time.Duration) Result {
	r := Result{ID: "backup.local", Severity: OK}
	if maxAge <= 0 {
		maxAge = DefaultMaxBackupAge
	}
	var newest *backup.Entry
	var unusable []string
	for i := range entries {
		e := &entries[i]
		if why := unrestorable(e, clusterID, version); why != "" {
			unusable = append(unusable, e.Dir+": "+why)
			continue
		}
		if newest == nil || completed(e).After(completed(newest)) {
			newest = e
		}
	}
	if newest == nil {
		r.Severity = Fail
		r.Summary = "no backup"
		if len(entries) > 0 {
			r.Summary = fmt.Sprintf("none of %d backups can restore this cluster", len(entries))
		}
		sort.Strings(unusable)
		r.Evidence = unusable
		r.Fix = "take one: `oc recover backup --output-dir <backup-dir>/<name>`"
		return r
	}
	age := now.Sub(completed(newest))
	r.Summary = fmt.Sprintf("newest restorable backup: %s, %s old", newest.Dir, roughly(age))
	warn := func(format string, args ...any) {
		r.Severity = Warn
		r.Evidence = append(r.Evidence, newest.Dir+": "+fmt.Sprintf(format, args...))
	}
	stale, dirty := age > maxAge, newest.Dirty()
	untested := !newest.Manifest.Etcd.RestoreTested
	unencrypted := encrypted && newest.Manifest.EncryptionType == ""
	if res := newest.Manifest.Resources; res != nil && !res.FirstExpiry.IsZero() && res.FirstExpiry.Before(now) {
		warn("certificates in it have expired since (%s, %s): after a restore the cluster regenerates them and node CSRs wait for `oc recover csr approve`", res.FirstExpiring, res.FirstExpiry.Format(time.RFC3339))
	}
	if stale {
		warn("taken %s ago, more than %s", roughly(age), roughly(maxAge))
	}
	if dirty {
		warn("taken during a rollout (%s): a restore refuses it without --force", backup.DirtyMark)
	}
	if untested {
		warn("its snapshot was never test-restored")
	}
	if unencrypted {
		warn("taken while etcd encryption was off, or by a tool that did not record it: its archive was not checked for the encryption configuration")
	}
	sort.Strings(r.Evidence)
	var fix []string
	if stale || dirty || unencrypted {
		take := "take a new backup: `oc recover backup --output-dir <backup-dir>/<name>`"
		if dirty {
			take += ", while no static-pod operator is rolling out"
		}
		fix = append(fix, take)
	}
	if untested {
		fix = append(fix, "test-restore it with `oc recover backup verify "+newest.Dir+"`")
	}
	r.Fix = strings.Join(fix, "; ")
	return r
}

// unrestorable says why a restore of this cluster could not take e, ""
// when it could.
func unrestorable(e *backup.Entry, clusterID, version string) string {
	m := e.Manifest
	switch {
	case m == nil && e.Problem != "":
		return e.Problem
	case m == nil:
		return "no " + backup.ManifestName
	case m.ClusterID != clusterID:
		return fmt.Sprintf("a backup of cluster %s, not of this one (%s)", m.ClusterID, clusterID)
	case m.Snapshot != nil && m.Snapshot.ClusterID != "" && m.Snapshot.ClusterID != clusterID:
		return fmt.Sprintf("its snapshot is of cluster %s, not of this one (%s), whatever %s says", m.Snapshot.ClusterID, clusterID, backup.ManifestName)
	case m.Version != version:
		return fmt.Sprintf("taken on OpenShift %s, the cluster runs %s: a restore needs the same z-stream", m.Version, version)
	case m.Snapshot != nil && m.Snapshot.Version != "" && m.Snapshot.Version != version:
		return fmt.Sprintf("its snapshot was taken on OpenShift %s, the cluster runs %s: a restore needs the same z-stream", m.Snapshot.Version, version)
	case len(m.Files) == 0:
		return backup.ManifestName + " lists no files"
	}
	return ""
}

// completed is when e's backup was complete: backup.json's completedAt, or
// when it was taken if that is missing.
func completed(e *backup.Entry) time.Time {
	if e.Manifest != nil && !e.Manifest.CompletedAt.IsZero() {
		return e.Manifest.CompletedAt
	}
	return e.Created()
}
