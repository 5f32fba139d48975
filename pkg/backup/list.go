package backup

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// Entry is one backup directory found under a parent directory.
type Entry struct {
	Dir      string    `json:"dir"`
	Manifest *Manifest `json:"manifest,omitempty"`
	Problem  string    `json:"problem,omitempty"`
}

// Created is when the backup was taken (zero when unknown).
func (e Entry) Created() time.Time {
	if e.Manifest == nil {
		return time.Time{}
	}
	return e.Manifest.StartedAt
}

// List finds the backups directly under parent (directories with a
// backup.json), newest first.
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
