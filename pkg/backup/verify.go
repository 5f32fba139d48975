package backup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/oc-recover/oc-recover/pkg/etcd"
)

// Verification is the result of checking a backup directory.
type Verification struct {
	Dir      string              `json:"dir"`
	Manifest *Manifest           `json:"manifest,omitempty"`
	Files    []File              `json:"files"`
	Snapshot etcd.SnapshotReport `json:"snapshot"`
	// Resources is what the static resources archive holds.
	Resources ResourcesReport `json:"resources"`
	// Dirty: the backup was taken during a rollout (--force): its files
	// are named __POSSIBLY_DIRTY__, or backup.json says so.
	Dirty bool `json:"dirty"`
}

// RefuseDirty is the restore's rule for a possibly dirty backup: refused
// unless the user says --force.
func (v *Verification) RefuseDirty(force bool, command string) error {
	if !v.Dirty || force {
		return nil
	}
	return fmt.Errorf("backup %s was taken during a rollout of a static-pod operator (its files are marked %s): its static pod resources may not match its snapshot. Restore an earlier clean backup (`%s backup list %s`), or pass --force to restore this one anyway",
		v.Dir, DirtyMark, command, filepath.Dir(filepath.Clean(v.Dir)))
}

// Verify checks a backup directory as `backup` does right after download:
// the files backup.json lists are there with their sizes and sha256, both
// come from the same backup, the snapshot's trailer and bbolt structure are
// sound and it restores into a throw-away data dir, and the static resources
// archive reads to the end. Without backup.json it checks the two files it
// finds.
//
// The snapshot's own objects say which cluster and release it is of; when
// backup.json says otherwise, the directory's files were mixed up or its
// backup.json edited, and it fails. extraKeys are snapshot keys whose
// values the caller wants (in Snapshot.Values).
func Verify(dir string, extraKeys ...string) (*Verification, error) {
	v := &Verification{Dir: dir}
	m, err := ReadManifest(dir)
	switch {
	case err == nil:
		v.Manifest = m
		v.Files = m.Files
		for _, f := range m.Files {
			if _, err := os.Stat(filepath.Join(dir, f.Name)); err != nil {
				return v, fmt.Errorf("%s lists %s, which is missing from %s (renamed or removed?)", ManifestName, f.Name, dir)
			}
		}
	case errors.Is(err, os.ErrNotExist):
		if v.Files, err = findFiles(dir); err != nil {
			return v, err
		}
	default:
		return v, err
	}
	v.Dirty = m != nil && m.Dirty
	for _, f := range v.Files {
		v.Dirty = v.Dirty || strings.Contains(f.Name, DirtyMark)
	}
	found, err := checkFiles(dir, v.Files, "", ManifestName, m != nil && m.EncryptionType != "", extraKeys...)
	v.Snapshot, v.Resources = found.Snapshot, found.Resources
	report := found.Snapshot
	if err != nil {
		return v, err
	}
	if m != nil {
		if err := found.matches(m.ClusterID, m.Version, dir+"/"+ManifestName); err != nil {
			return v, err
		}
	}
	if m != nil && (m.Etcd.Revision != report.Revision || m.Etcd.Hash != report.Hash) {
		return v, fmt.Errorf("the snapshot holds revision %d (hash %d), %s records revision %d (hash %d)", report.Revision, report.Hash, ManifestName, m.Etcd.Revision, m.Etcd.Hash)
	}
	return v, nil
}

// findFiles finds the backup's two files in a directory without backup.json.
func findFiles(dir string) ([]File, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var snaps, res []string
	for _, e := range entries {
		switch {
		case snapshotName.MatchString(e.Name()):
			snaps = append(snaps, e.Name())
		case resourcesName.MatchString(e.Name()):
			res = append(res, e.Name())
		}
	}
	sort.Strings(snaps)
	sort.Strings(res)
	switch {
	case len(snaps) == 0:
		return nil, fmt.Errorf("no snapshot_<ts>.db in %s (and no %s)", dir, ManifestName)
	case len(res) == 0:
		return nil, fmt.Errorf("no static_kuberesources_<ts>.tar.gz in %s: a snapshot cannot be restored without it", dir)
	case len(snaps) > 1 || len(res) > 1:
		return nil, fmt.Errorf("%s holds files of more than one backup (%s); keep one backup per directory", dir, strings.Join(append(snaps, res...), ", "))
	}
	return []File{{Name: snaps[0], Kind: KindSnapshot}, {Name: res[0], Kind: KindStaticResources}}, nil
}

// ClusterID is the backup's cluster: the snapshot's own, else backup.json's.
func (v *Verification) ClusterID() string {
	if id := v.Snapshot.Cluster.ClusterID; id != "" {
		return id
	}
	if v.Manifest != nil {
		return v.Manifest.ClusterID
	}
	return ""
}

// Version is the release the backup was taken on: the snapshot's own, else
// backup.json's.
func (v *Verification) Version() string {
	if ver := v.Snapshot.Cluster.Version; ver != "" {
		return ver
	}
	if v.Manifest != nil {
		return v.Manifest.Version
	}
	return ""
}

// matches refuses a snapshot whose own clusterversion names another cluster
// or release than source says. A snapshot without one (not OpenShift's, or
// from before the cluster version operator wrote it) has nothing to say.
func (c checked) matches(clusterID, version, source string) error {
	s := c.Snapshot.Cluster
	if s.ClusterID != "" && clusterID != "" && s.ClusterID != clusterID {
		return fmt.Errorf("the snapshot is of cluster %s (its clusterversions/version), but %s says %s: the files of two backups were mixed, or the record was edited", s.ClusterID, source, clusterID)
	}
	if s.Version != "" && version != "" && s.Version != version {
		return fmt.Errorf("the snapshot was taken on OpenShift %s (its clusterversions/version), but %s says %s: the files of two backups were mixed, or the record was edited", s.Version, source, version)
	}
	return nil
}
