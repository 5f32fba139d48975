package backup

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Entry is one backup directory found under a parent directory.
type Entry struct {
	Dir      string    `json:"dir"`
	Manifest *Manifest `json:"manifest,omitempty"`
	// Files are the backup files of a directory without backup.json
	// (copied from a host by hand, or written by the cluster's own backup
	// job), as their names say.
	Files   []File `json:"files,omitempty"`
	Problem string `json:"problem,omitempty"`
}

// Created is when the backup was taken (zero when unknown): backup.json's
// start, else the time in the file names (the host's clock, UTC on RHCOS).
func (e Entry) Created() time.Time {
	if e.Manifest != nil {
		return e.Manifest.StartedAt
	}
	ts, err := time.Parse("2006-01-02_150405", strings.TrimSuffix(timestampOf(e.Files), DirtyMark))
	if err != nil {
		return time.Time{}
	}
	return ts
}

// Dirty says whether the backup was taken during a rollout (--force).
func (e Entry) Dirty() bool {
	files := e.Files
	if e.Manifest != nil {
		if e.Manifest.Dirty {
			return true
		}
		files = e.Manifest.Files
	}
	for _, f := range files {
		if strings.Contains(f.Name, DirtyMark) {
			return true
		}
	}
	return false
}

// List finds the backups directly under parent, newest first: directories
// with a backup.json, and those holding one snapshot and one static
// resources archive of the host script without it.
func List(parent string) ([]Entry, error) {
	entries, err := os.ReadDir(parent)
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(parent, e.Name())
		if _, err := os.Stat(filepath.Join(dir, ManifestName)); err != nil {
			if files, err := findFiles(dir); err == nil {
				for i := range files {
					if st, err := os.Stat(filepath.Join(dir, files[i].Name)); err == nil {
						files[i].Size = st.Size()
					}
				}
				out = append(out, Entry{Dir: dir, Files: files, Problem: "no " + ManifestName + ": not verified by oc-recover"})
			}
			continue
		}
		entry := Entry{Dir: dir}
		if m, err := ReadManifest(dir); err != nil {
			entry.Problem = err.Error()
		} else {
			entry.Manifest = m
		}
		out = append(out, entry)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Created().After(out[j].Created()) })
	return out, nil
}

// Prune removes all but the newest keep backups under parent, and returns
// the directories it removed. Only directories with a readable backup.json
// of this cluster count; anything else is left alone.
func Prune(parent, clusterID string, keep int) ([]string, error) {
	if keep < 1 {
		return nil, fmt.Errorf("--keep must be at least 1")
	}
	entries, err := List(parent)
	if err != nil {
		return nil, err
	}
	var removed []string
	kept := 0
	for _, e := range entries {
		if e.Manifest == nil || e.Manifest.ClusterID != clusterID {
			continue
		}
		if kept < keep {
			kept++
			continue
		}
		if err := os.RemoveAll(e.Dir); err != nil {
			return removed, err
		}
		removed = append(removed, e.Dir)
	}
	return removed, nil
}

// Recent returns the newest backup of the cluster under parent taken
// within maxAge of now, or nil. A backup counts when its backup.json is
// readable and every file it lists is there at its recorded size.
func Recent(parent, clusterID string, maxAge time.Duration, now time.Time) (*Entry, error) {
	entries, err := List(parent)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if e.Manifest == nil || e.Manifest.ClusterID != clusterID || now.Sub(e.Created()) > maxAge {
			continue
		}
		if complete(e) {
			return &e, nil
		}
	}
	return nil, nil
}

func complete(e Entry) bool {
	for _, f := range e.Manifest.Files {
		st, err := os.Stat(filepath.Join(e.Dir, f.Name))
		if err != nil || st.Size() != f.Size {
			return false
		}
	}
	return len(e.Manifest.Files) > 0
}
