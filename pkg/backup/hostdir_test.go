package backup

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/oc-recover/oc-recover/pkg/debugnode"
)

// scriptedRunner answers each host script with the exit code of the first
// rule whose marker the script contains, and records the scripts.
type scriptedRunner struct {
	codes   map[string]int
	scripts []string
}

func (r *scriptedRunner) Node() string { return "m0" }
func (r *scriptedRunner) Host(ctx context.Context, script string, env map[string]string, stdout, stderr io.Writer) (int, error) {
	r.scripts = append(r.scripts, script)
	for marker, code := range r.codes {
		if strings.Contains(script, marker) {
			return code, nil
		}
	}
	return 0, nil
}
func (r *scriptedRunner) Fetch(context.Context, string, io.Writer, func(int64, int64)) (debugnode.Transfer, error) {
	return debugnode.Transfer{}, errors.New("not here")
}
func (r *scriptedRunner) Close(context.Context) error { return nil }

type quietProgress struct{}

func (quietProgress) Step(string, ...any)           {}
func (quietProgress) HostOutput(string)             {}
func (quietProgress) Transfer(string, int64, int64) {}

func (r *scriptedRunner) ran(s string) bool {
	for _, sc := range r.scripts {
		if strings.Contains(sc, s) {
			return true
		}
	}
	return false
}

// A host directory that existed before the run (the wrapper's mkdir fails,
// exit 73) is not the run's: the backup fails and removes nothing. Any
// other failure removes the run's directory.
func TestTakeRemovesOnlyTheHostDirectoryItMade(t *testing.T) {
	for _, tc := range []struct {
		code       int
		wantRemove bool
	}{{73, false}, {1, true}} {
		r := &scriptedRunner{codes: map[string]int{"cluster-backup.sh": tc.code}}
		start := func(context.Context, string) (debugnode.Runner, error) { return r, nil }
		_, err := Take(context.Background(), start, &Cluster{Node: "m0"}, Options{OutputDir: t.TempDir(), Now: time.Now(), SilenceTimeout: time.Minute}, quietProgress{})
		if err == nil {
			t.Fatalf("exit %d: the backup did not fail", tc.code)
		}
		if got := r.ran("rm -rf"); got != tc.wantRemove {
			t.Errorf("exit %d: removed the host directory = %v, want %v (%v)", tc.code, got, tc.wantRemove, err)
		}
		if tc.code == 73 && !errors.Is(err, errDirExists) {
			t.Errorf("exit 73: %v, want errDirExists", err)
		}
	}
}

func (r *scriptedRunner) Upload(context.Context, io.Reader, int64, string, func(int64, int64)) (debugnode.Transfer, error) {
	return debugnode.Transfer{}, errors.New("no upload in this test")
}
