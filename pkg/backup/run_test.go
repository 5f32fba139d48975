package backup

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/oc-recover/oc-recover/pkg/debugnode"
)

// A backup that fails removes the directory Run created for it, and leaves
// a directory the administrator named (and made) in place.
func TestRunRemovesTheDirectoryItCreatedWhenTheBackupFails(t *testing.T) {
	failing := func(context.Context, string) (debugnode.Runner, error) {
		return &scriptedRunner{codes: map[string]int{"cluster-backup.sh": 1}}, nil
	}
	now := time.Date(2026, 11, 21, 3, 4, 5, 0, time.UTC)
	cl := &Cluster{Node: "m0", ID: "38b943bb-7fd1", InfrastructureName: "prod-x7k2p"}
	opts := Options{Now: now, SilenceTimeout: time.Minute}

	parent := t.TempDir()
	req := Request{Parent: parent, Options: opts}
	if got, want := req.OutputDir(cl), filepath.Join(parent, "backup-prod-x7k2p-20261121-030405"); got != want {
		t.Fatalf("OutputDir = %s, want %s", got, want)
	}
	if res, err := Run(context.Background(), failing, cl, req, quietProgress{}); err == nil || res != nil {
		t.Fatalf("Run = %v, %v: want the backup's failure and no result", res, err)
	}
	if left, _ := os.ReadDir(parent); len(left) != 0 {
		t.Errorf("%s holds %v after a failed backup, want nothing", parent, left)
	}

	// --output-dir names a directory that exists and is empty: not Run's to remove.
	named := filepath.Join(t.TempDir(), "mine")
	if err := os.Mkdir(named, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), failing, cl, Request{Dir: named, Options: opts}, quietProgress{}); err == nil {
		t.Fatal("the backup did not fail")
	}
	if _, err := os.Stat(named); err != nil {
		t.Errorf("the directory the administrator made is gone: %v", err)
	}
}

// A directory that is not empty is refused before anything runs on a node.
func TestRunRefusesADirectoryThatIsNotEmpty(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "notes"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	started := false
	start := func(context.Context, string) (debugnode.Runner, error) { started = true; return nil, nil }
	_, err := Run(context.Background(), start, &Cluster{Node: "m0"}, Request{Dir: dir, Options: Options{Now: time.Now()}}, quietProgress{})
	if err == nil || started {
		t.Errorf("Run into a non-empty directory: err %v, a debug pod started: %v; want a refusal before any", err, started)
	}
	if _, err := os.Stat(filepath.Join(dir, "notes")); err != nil {
		t.Errorf("the directory's file is gone: %v", err)
	}
}
