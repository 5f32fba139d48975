package box

import (
	"fmt"
	"io"
	"os"
	"sync"
)

// processTB lets a box live outside a single test (a TestMain, make demo):
// the apiserver's test helpers want a testing.TB for clean-up and logs.
type processTB struct {
	name string
	log  io.Writer
	dir  string

	mu       sync.Mutex
	cleanups []func()
	failed   bool
}

func newProcessTB(name, dir string, log io.Writer) *processTB {
	return &processTB{name: name, dir: dir, log: log}
}

func (t *processTB) Cleanup(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cleanups = append(t.cleanups, f)
}

// runCleanups runs the registered clean-ups, last first, as testing does.
func (t *processTB) runCleanups() {
	t.mu.Lock()
	c := t.cleanups
	t.cleanups = nil
	t.mu.Unlock()
	for i := len(c) - 1; i >= 0; i-- {
		c[i]()
	}
}

func (t *processTB) Error(args ...any)                 { t.Log(args...); t.Fail() }
func (t *processTB) Errorf(format string, args ...any) { t.Logf(format, args...); t.Fail() }
func (t *processTB) Fail() {
	t.mu.Lock()
	t.failed = true
	t.mu.Unlock()
}
func (t *processTB) FailNow() { t.Fail(); panic(fmt.Sprintf("%s: FailNow", t.name)) }
func (t *processTB) Failed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failed
}
func (t *processTB) Fatal(args ...any)                 { t.Log(args...); t.FailNow() }
func (t *processTB) Fatalf(format string, args ...any) { t.Logf(format, args...); t.FailNow() }
func (t *processTB) Helper()                           {}
func (t *processTB) Log(args ...any)                   { fmt.Fprintln(t.log, args...) }
func (t *processTB) Logf(format string, args ...any)   { fmt.Fprintf(t.log, format+"\n", args...) }
func (t *processTB) Name() string                      { return t.name }
func (t *processTB) Setenv(key, value string)          { _ = os.Setenv(key, value) }
func (t *processTB) Skip(args ...any)                  { t.Log(args...) }
func (t *processTB) SkipNow()                          {}
func (t *processTB) Skipf(format string, args ...any)  { t.Logf(format, args...) }
func (t *processTB) Skipped() bool                     { return false }
func (t *processTB) TempDir() string {
	d, err := os.MkdirTemp(t.dir, "tmp-")
	if err != nil {
		panic(err)
	}
	return d
}
