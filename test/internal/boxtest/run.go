// Package boxtest holds the helpers that the cluster-in-a-box's own tests
// (test/box), the end-to-end tests (test/e2e) and the benchmarks
// (test/bench) share: running programs the way a user's shell would,
// running commands on a node's host, and waiting for what the box's
// simulators report a moment after it happens.
//
// It is a separate package, and not part of test/box, so that the box
// itself stays free of helpers that take a *testing.T; it is internal to
// the test module because nothing outside it runs these tests.
package boxtest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oc-recover/oc-recover/test/box"
)

// Result is what a command printed and how it exited: the tests assert on
// all three, and print it whole when an assertion fails.
type Result struct {
	Stdout, Stderr string
	Code           int
}

func (r Result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.Code, r.Stdout, r.Stderr)
}

// Capture runs cmd, which the caller has set up but for its output, and
// returns what it printed and its exit code. A non-zero exit is a Result,
// not an error, since the tests check exit codes; the error is for a
// program that did not run at all, which each caller reports in its own
// words.
func Capture(cmd *exec.Cmd) (Result, error) {
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code, err = ee.ExitCode(), nil
	}
	return Result{Stdout: stdout.String(), Stderr: stderr.String(), Code: code}, err
}

// Tools runs the programs a test package's TestMain built into BinDir
// (kubectl, and for the end-to-end tests the plugin under both its names).
// It is a value rather than package state so that each test package says
// which directory its own TestMain built.
type Tools struct {
	BinDir string
}

// Run runs a program from BinDir (or PATH) with the box's kubeconfig, the
// way a user's shell would, and a bounded time.
func (tl Tools) Run(t testing.TB, b *box.Box, stdin string, name string, args ...string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	path := name
	if _, err := os.Stat(filepath.Join(tl.BinDir, name)); err == nil {
		path = filepath.Join(tl.BinDir, name)
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+b.Kubeconfig, "PATH="+tl.BinDir+":"+os.Getenv("PATH"), "HOME="+t.TempDir())
	cmd.Stdin = strings.NewReader(stdin)
	r, err := Capture(cmd)
	if err != nil {
		t.Fatalf("%s %v: %v", name, args, err)
	}
	return r
}

// Suite is what a test package's TestMain prepares once for all its tests:
// the programs they run, and a box for the tests that do not change the
// cluster's health (starting a box per test would take most of the run).
type Suite struct {
	Tools  Tools
	Shared *box.Box
}

// StartSuite builds the test package's programs with build into a new
// temporary directory named after binDirPrefix, and starts the shared box
// with one worker. Stop undoes both.
func StartSuite(binDirPrefix string, build func(binDir string) error) (*Suite, error) {
	dir, err := os.MkdirTemp("", binDirPrefix)
	if err != nil {
		return nil, err
	}
	if err := build(dir); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	shared, err := box.Start(ctx, box.Options{Workers: 1})
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start the cluster-in-a-box: %w", err)
	}
	return &Suite{Tools: Tools{BinDir: dir}, Shared: shared}, nil
}

// Stop stops the shared box, then removes the built programs.
func (s *Suite) Stop() {
	s.Shared.Stop()
	os.RemoveAll(s.Tools.BinDir)
}

// StartBox starts a box of the test's own, for tests that break it, and
// stops it when the test ends.
func StartBox(t testing.TB, opts box.Options) *box.Box {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// BOX_LOG=file keeps what the box's simulators say, to find out why
	// a test waited in vain (the log is the process's: with several boxes,
	// the last one started has every box's lines).
	if f := os.Getenv("BOX_LOG"); f != "" && opts.Log == nil {
		w, err := os.OpenFile(f, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			t.Fatalf("BOX_LOG: %v", err)
		}
		t.Cleanup(func() { w.Close() })
		opts.Log = w
	}
	b, err := box.Start(ctx, opts)
	if err != nil {
		t.Fatalf("start the cluster-in-a-box: %v", err)
	}
	t.Cleanup(b.Stop)
	return b
}
