package backup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/oc-recover/oc-recover/pkg/debugnode"
	"github.com/oc-recover/oc-recover/pkg/etcd"
	"github.com/oc-recover/oc-recover/pkg/exitcode"
	"github.com/oc-recover/oc-recover/pkg/writebehind"
)

// ManifestName is the file describing a backup directory.
const ManifestName = "backup.json"

// Manifest is backup.json: what was backed up, from where, and how to check it.
type Manifest struct {
	FormatVersion      int       `json:"formatVersion"`
	ClusterID          string    `json:"clusterID"`
	InfrastructureName string    `json:"infrastructureName,omitempty"`
	Version            string    `json:"version"`
	Node               string    `json:"node"`
	HostScript         string    `json:"hostScript"`
	StartedAt          time.Time `json:"startedAt"`
	CompletedAt        time.Time `json:"completedAt"`
	Timestamp          string    `json:"timestamp"` // the <ts> of the file names
	Etcd               EtcdInfo  `json:"etcd"`
	Files              []File    `json:"files"`
	EncryptionType     string    `json:"encryptionType,omitempty"`
	// Snapshot is what the snapshot's own objects say of the cluster, and
	// Resources what the static resources archive holds (revisions, the
	// first certificate to expire); both absent in files written before
	// they were recorded.
	Snapshot  *etcd.SnapshotCluster `json:"snapshot,omitempty"`
	Resources *ResourcesReport      `json:"resources,omitempty"`
	Forced    []string              `json:"forced,omitempty"`
	// Dirty: taken during a rollout (--force); the files are named
	// __POSSIBLY_DIRTY__ where the host script names them so, and a restore
	// refuses the backup without --force.
	Dirty bool   `json:"dirty,omitempty"`
	Tool  string `json:"tool"`
}

// EtcdInfo is what the snapshot holds.
type EtcdInfo struct {
	// Revision is the newest revision in the snapshot.
	Revision int64 `json:"revision"`
	// Hash is etcd's crc32 of the database content (`etcdutl snapshot status`).
	Hash uint32 `json:"hash"`
	// LiveKeys counts the keys alive at Revision (etcdutl 3.6's totalKey).
	// Files written before it was named so call it totalKeys.
	LiveKeys int `json:"liveKeys"`
	// BucketEntries counts every key/value entry of every bucket (etcdctl
	// 3.4/3.5's totalKey); 0 in files written before it was recorded.
	BucketEntries int   `json:"bucketEntries,omitempty"`
	DBSize        int64 `json:"dbSize"`
	RestoreTested bool  `json:"restoreTested"`
}

// UnmarshalJSON reads both names of the live-key count: liveKeys, and the
// totalKeys of older backup.json files.
func (e *EtcdInfo) UnmarshalJSON(data []byte) error {
	type plain EtcdInfo
	var v struct {
		plain
		// Shallower than plain's fields, so these two take the names.
		LiveKeys  *int `json:"liveKeys"`
		TotalKeys *int `json:"totalKeys"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	*e = EtcdInfo(v.plain)
	switch {
	case v.LiveKeys != nil:
		e.LiveKeys = *v.LiveKeys
	case v.TotalKeys != nil:
		e.LiveKeys = *v.TotalKeys
	}
	return nil
}

// File is one artefact of the backup.
type File struct {
	Name   string `json:"name"`
	Kind   string `json:"kind"` // snapshot | static-resources
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// DirtyMark is what cluster-backup.sh --force adds to its file names.
const DirtyMark = "__POSSIBLY_DIRTY__"

const (
	KindSnapshot        = "snapshot"
	KindStaticResources = "static-resources"
)

var (
	// The host script's file names; with --force (4.6 and later) it adds
	// DirtyMark before the extension.
	snapshotName  = regexp.MustCompile(`^snapshot_(\d{4}-\d{2}-\d{2}_\d{6})(__POSSIBLY_DIRTY__)?\.db$`)
	resourcesName = regexp.MustCompile(`^static_kuberesources_(\d{4}-\d{2}-\d{2}_\d{6})(__POSSIBLY_DIRTY__)?\.tar\.gz$`)
)

// Progress receives what a backup is doing, for the command to show.
type Progress interface {
	Step(format string, args ...any)
	// HostOutput is one line the host script printed.
	HostOutput(line string)
	// Transfer reports bytes of a download; done == total when finished.
	Transfer(name string, done, total int64)
}

// Options shape one backup run.
type Options struct {
	OutputDir  string
	KeepOnNode bool
	Tool       string // oc-recover's version, recorded in backup.json
	Now        time.Time
	// SilenceTimeout ends a host script that prints nothing for this long
	// (default DefaultSilenceTimeout).
	SilenceTimeout time.Duration
}

// DefaultOutputDir is where a backup goes without --output-dir:
// ./backup-<cluster>-<timestamp>, the cluster named by its infrastructure
// name, else the start of its ID.
func DefaultOutputDir(cl *Cluster, now time.Time) string {
	name := cl.InfrastructureName
	if name == "" && len(cl.ID) >= 8 {
		name = cl.ID[:8]
	}
	return fmt.Sprintf("backup-%s-%s", name, now.UTC().Format("20060102-150405"))
}

// PrepareOutputDir checks, before anything happens on the cluster, that the
// output directory can take the backup: absent (it is created, 0700) or
// empty, and writable. It returns whether it created the directory.
func PrepareOutputDir(dir string) (created bool, err error) {
	entries, err := os.ReadDir(dir)
	switch {
	case err == nil && len(entries) > 0:
		return false, exitcode.Usagef("output directory %s is not empty; choose a new directory with --output-dir", dir)
	case err == nil:
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return false, exitcode.Usagef("cannot create output directory %s: %v", dir, err)
		}
		created = true
	default:
		return false, exitcode.Usagef("cannot use output directory %s: %v", dir, err)
	}
	probe, err := os.CreateTemp(dir, ".write-test-")
	if err != nil {
		if created {
			_ = os.Remove(dir)
		}
		return false, exitcode.Usagef("output directory %s is not writable: %v", dir, err)
	}
	probe.Close()
	_ = os.Remove(probe.Name())
	return created, nil
}

// Take runs the backup on cl.Node and brings it into opts.OutputDir, which
// PrepareOutputDir has accepted. On failure nothing in the output directory
// looks complete: downloads stay *.part until all are verified, and are
// removed on error.
func Take(ctx context.Context, start debugnode.StartFunc, cl *Cluster, opts Options, p Progress) (m *Manifest, err error) {
	m = &Manifest{FormatVersion: 1, ClusterID: cl.ID, InfrastructureName: cl.InfrastructureName, Version: cl.Version,
		Node: cl.Node, StartedAt: opts.Now.UTC(), EncryptionType: cl.Encryption, Forced: cl.Forced, Dirty: cl.Dirty, Tool: opts.Tool}
	silence := opts.SilenceTimeout
	if silence <= 0 {
		silence = DefaultSilenceTimeout
	}
	p.Step("Starting a debug pod on %s", cl.Node)
	s, err := start(ctx, cl.Node)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := s.Close(ctx); cerr != nil && err == nil {
			err = cerr
		}
	}()

	hostDir := newHostDir(opts.Now)
	defer func() {
		if errors.Is(err, errDirExists) {
			return
		}
		if opts.KeepOnNode && err == nil {
			p.Step("Kept the host copy in %s on %s (--keep-on-node)", hostDir, cl.Node)
			return
		}
		removeHostCopy(ctx, s, start, hostDir, p)
	}()

	run, err := runHostScript(ctx, s, hostDir, cl, silence, p)
	if err != nil {
		return nil, err
	}
	m.HostScript = "/usr/local/bin/cluster-backup.sh"
	if run.forced {
		m.HostScript += " --force"
	}
	names := []string{run.snapshot, run.resources}
	if strings.Contains(run.snapshot, DirtyMark) {
		m.Dirty = true
	}

	var parts []string
	defer func() {
		if err != nil {
			for _, part := range parts {
				_ = os.Remove(part)
			}
		}
	}()
	for _, name := range names {
		part := filepath.Join(opts.OutputDir, name+".part")
		parts = append(parts, part)
		f, err := Download(ctx, s, hostDir+"/"+name, part, p)
		if err != nil {
			return nil, err
		}
		m.Files = append(m.Files, f)
	}

	p.Step("Verifying the backup locally (sha256 trailer, bbolt consistency, test restore)")
	found, err := checkFiles(opts.OutputDir, m.Files, ".part", "the node's copy (its sha256 computed on "+cl.Node+")", cl.Encryption != "")
	if err != nil {
		return nil, err
	}
	if err := found.matches(m.ClusterID, m.Version, "the cluster"); err != nil {
		return nil, err
	}
	report := found.Snapshot
	m.Snapshot, m.Resources = &report.Cluster, &found.Resources
	m.Etcd = EtcdInfo{Revision: report.Revision, Hash: report.Hash, LiveKeys: report.LiveKeys, BucketEntries: report.BucketEntries, DBSize: report.DBSize, RestoreTested: report.RestoreTested}
	m.Timestamp = strings.TrimSuffix(timestampOf(m.Files), DirtyMark)
	for _, f := range m.Files {
		final := filepath.Join(opts.OutputDir, f.Name)
		if err := os.Rename(final+".part", final); err != nil {
			return nil, err
		}
	}
	parts = nil
	m.CompletedAt = time.Now().UTC()
	if err := WriteManifest(opts.OutputDir, m); err != nil {
		for _, f := range m.Files {
			_ = os.Remove(filepath.Join(opts.OutputDir, f.Name))
		}
		return nil, err
	}
	return m, syncDir(opts.OutputDir)
}

// Download streams a host file to part as a backup does, and returns what
// arrived, with the host's sha256: checkFiles then hashes the file as it is
// on disk and compares, so the bytes are hashed once on each end. The file
// goes to the disk while it arrives (write-behind), is fsynced, and is
// dropped from the page cache, so that the verification that follows reads
// back what the disk holds. A failed download leaves no part behind.
func Download(ctx context.Context, s debugnode.Runner, hostPath, part string, p Progress) (File, error) {
	name := strings.TrimSuffix(filepath.Base(part), ".part")
	f, err := os.OpenFile(part, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return File{}, err
	}
	// No buffering here: the download writes in chunks of its own.
	w := writebehind.New(f)
	t, err := s.Fetch(ctx, hostPath, w, func(done, total int64) { p.Transfer(name, done, total) })
	if err == nil {
		err = w.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(part)
		return File{}, fmt.Errorf("download %s: %w", name, err)
	}
	kind := KindSnapshot
	if resourcesName.MatchString(name) {
		kind = KindStaticResources
	}
	return File{Name: name, Kind: kind, Size: t.Size, SHA256: t.HostSHA256}, nil
}

// checked is what checkFiles found in a backup's two files.
type checked struct {
	Snapshot  etcd.SnapshotReport
	Resources ResourcesReport
}

// checkFiles verifies the artefacts on disk (with suffix, e.g. ".part"):
// sizes and sha256 against files (which come from against: the node's copy,
// or backup.json), the snapshot as a restore needs it, and the static
// resources as a readable tar.gz holding what a restore needs. The
// encryption configuration is required when encrypted says etcd encryption
// is on, or the snapshot's own apiserver/cluster does: the snapshot is read
// first. extraKeys are snapshot keys whose values the caller wants.
func checkFiles(dir string, files []File, suffix, against string, encrypted bool, extraKeys ...string) (checked, error) {
	var c checked
	if ts := timestampOf(files); ts == "" {
		return c, fmt.Errorf("the snapshot and the static resources come from two different backups (their timestamps differ): %s", fileNames(files))
	}
	ordered := append([]File(nil), files...)
	sort.SliceStable(ordered, func(i, j int) bool { return ordered[i].Kind == KindSnapshot && ordered[j].Kind != KindSnapshot })
	var seen = map[string]bool{}
	for _, f := range ordered {
		seen[f.Kind] = true
		path := filepath.Join(dir, f.Name+suffix)
		switch f.Kind {
		case KindSnapshot:
			r, err := etcd.VerifySnapshot(path, true, dir, extraKeys...)
			if err != nil {
				return c, err
			}
			if f.SHA256 != "" && (r.SHA256 != f.SHA256 || r.Size != f.Size) {
				return c, fmt.Errorf("%s does not match %s: sha256 %s size %d, there %s size %d", f.Name, against, r.SHA256, r.Size, f.SHA256, f.Size)
			}
			c.Snapshot = r
		case KindStaticResources:
			sum, size, rep, err := checkTarGz(path, encrypted || c.Snapshot.Cluster.Encrypted())
			if err != nil {
				return c, fmt.Errorf("%s: %w", f.Name, err)
			}
			if f.SHA256 != "" && (sum != f.SHA256 || size != f.Size) {
				return c, fmt.Errorf("%s does not match %s: sha256 %s size %d, there %s size %d", f.Name, against, sum, size, f.SHA256, f.Size)
			}
			c.Resources = rep
		}
	}
	for _, kind := range []string{KindSnapshot, KindStaticResources} {
		if !seen[kind] {
			return c, fmt.Errorf("the backup has no %s file (%s)", kind, map[string]string{KindSnapshot: "snapshot_<ts>.db", KindStaticResources: "static_kuberesources_<ts>.tar.gz"}[kind])
		}
	}
	return c, nil
}

// timestampOf returns the <ts> shared by all files, with DirtyMark when
// they carry it, or "" when they differ.
func timestampOf(files []File) string {
	ts := ""
	for _, f := range files {
		var m []string
		if m = snapshotName.FindStringSubmatch(f.Name); m == nil {
			m = resourcesName.FindStringSubmatch(f.Name)
		}
		if m == nil {
			return ""
		}
		if ts != "" && ts != m[1]+m[2] {
			return ""
		}
		ts = m[1] + m[2]
	}
	return ts
}

func fileNames(files []File) string {
	var n []string
	for _, f := range files {
		n = append(n, f.Name)
	}
	sort.Strings(n)
	return strings.Join(n, ", ")
}

// File is the manifest's file of the given kind (KindSnapshot,
// KindStaticResources); a zero File when it lists none.
func (m *Manifest) File(kind string) File {
	for _, f := range m.Files {
		if f.Kind == kind {
			return f
		}
	}
	return File{}
}

// WriteManifest writes backup.json atomically, readable by its owner only.
func WriteManifest(dir string, m *Manifest) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, ManifestName+".part")
	if err := os.WriteFile(tmp, append(data, '\n'), 0o600); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	f, err := os.Open(tmp)
	if err == nil {
		err = f.Sync()
		f.Close()
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, ManifestName))
}

// ReadManifest reads dir's backup.json.
func ReadManifest(dir string) (*Manifest, error) {
	data, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if err != nil {
		return nil, err
	}
	m := &Manifest{}
	if err := json.Unmarshal(data, m); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, ManifestName), err)
	}
	return m, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// removeHostCopy removes the run's host directory (and its trace) through
// the run's debug pod or, when that pod is gone (deleted, evicted), through
// a new one, so that a failed run leaves nothing on the host either. It is
// bounded, and runs to its end even after a Ctrl-C.
func removeHostCopy(ctx context.Context, s debugnode.Runner, start debugnode.StartFunc, hostDir string, p Progress) {
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	rm := "rm -rf -- " + debugnode.ShellQuote(hostDir) + " " + debugnode.ShellQuote(hostDir+".trace")
	code, err := s.Host(bg, rm, nil, io.Discard, io.Discard)
	if err == nil && code == 0 {
		p.Step("Removed the host copy %s on %s", hostDir, s.Node())
		return
	}
	again, startErr := start(bg, s.Node())
	if startErr == nil {
		code, err = again.Host(bg, rm, nil, io.Discard, io.Discard)
		_ = again.Close(bg)
		if err == nil && code == 0 {
			p.Step("Removed the host copy %s on %s (through a new debug pod)", hostDir, s.Node())
			return
		}
	} else {
		err = startErr
	}
	p.Step("Could not remove the host copy %s on %s (%v); remove it there by hand", hostDir, s.Node(), err)
}
