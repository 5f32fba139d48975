package power

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/oc-recover/oc-recover/pkg/debugnode"
)

// fakeHosts records what the shutdown does on each host, in order. It
// stands in for debug pods only to check the order and the all-or-nothing
// rule; the real thing is exercised on the cluster-in-a-box (test/e2e).
type fakeHosts struct {
	mu         sync.Mutex
	log        []string
	failStart  map[string]bool
	failScript map[string]string // node -> command that fails there
	closed     map[string]bool
}

type fakeRunner struct {
	h    *fakeHosts
	node string
}

func (f *fakeHosts) start(_ context.Context, node string) (debugnode.Runner, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failStart[node] {
		return nil, fmt.Errorf("debug pod on %s did not start", node)
	}
	f.log = append(f.log, "start "+node)
	return &fakeRunner{h: f, node: node}, nil
}

func (r *fakeRunner) Node() string { return r.node }

func (r *fakeRunner) Host(_ context.Context, script string, _ map[string]string, _, stderr io.Writer) (int, error) {
	r.h.mu.Lock()
	defer r.h.mu.Unlock()
	r.h.log = append(r.h.log, r.node+": "+script)
	if r.h.failScript[r.node] == script {
		fmt.Fprintln(stderr, "Failed to call ScheduleShutdown")
		return 1, nil
	}
	return 0, nil
}

func (r *fakeRunner) Fetch(context.Context, string, io.Writer, func(int64, int64)) (debugnode.Transfer, error) {
	return debugnode.Transfer{}, errors.New("not used")
}

func (r *fakeRunner) Close(context.Context) error {
	r.h.mu.Lock()
	defer r.h.mu.Unlock()
	r.h.closed[r.node] = true
	return nil
}

var fourNodes = []Target{{Node: "worker-0", Role: Worker}, {Node: "worker-1", Role: Worker},
	{Node: "master-0", Role: ControlPlane}, {Node: "master-1", Role: ControlPlane}}

func newFakeHosts() *fakeHosts {
	return &fakeHosts{failStart: map[string]bool{}, failScript: map[string]string{}, closed: map[string]bool{}}
}

func indexOf(log []string, entry string) int {
	for i, e := range log {
		if e == entry {
			return i
		}
	}
	return -1
}

func TestShutdownSchedulesWorkersThenControlPlaneAfterEveryPodRuns(t *testing.T) {
	h := newFakeHosts()
	r := NewReport(fourNodes)
	s := &Shutdown{Start: h.start, Parallel: 1}
	if err := s.Run(context.Background(), fourNodes, r); err != nil {
		t.Fatal(err)
	}
	lastStart, firstWorker, lastWorker, firstMaster := -1, len(h.log), -1, len(h.log)
	for _, n := range fourNodes {
		lastStart = max(lastStart, indexOf(h.log, "start "+n.Node))
		i := indexOf(h.log, n.Node+": "+HostCommand)
		if i < 0 {
			t.Fatalf("%s: nothing scheduled: %v", n.Node, h.log)
		}
		if n.Role == Worker {
			firstWorker, lastWorker = min(firstWorker, i), max(lastWorker, i)
		} else {
			firstMaster = min(firstMaster, i)
		}
		if !h.closed[n.Node] {
			t.Errorf("%s: debug session not closed", n.Node)
		}
	}
	if lastStart > firstWorker || lastWorker > firstMaster {
		t.Errorf("order: %v", h.log)
	}
	if r.Scheduled != 4 || r.PowerOffBy == nil {
		t.Errorf("report: %+v", r)
	}
	for _, n := range r.Nodes {
		if n.Outcome != Scheduled || n.At == nil {
			t.Errorf("%s: %s", n.Node, n.Outcome)
		}
	}
}

func TestShutdownSchedulesNothingUnlessEveryDebugPodRuns(t *testing.T) {
	h := newFakeHosts()
	h.failStart["master-1"] = true
	r := NewReport(fourNodes)
	err := (&Shutdown{Start: h.start}).Run(context.Background(), fourNodes, r)
	if !errors.Is(err, ErrNothingScheduled) {
		t.Fatalf("err = %v", err)
	}
	for _, e := range h.log {
		if e != "start worker-0" && e != "start worker-1" && e != "start master-0" {
			t.Errorf("did %q", e)
		}
	}
	for _, n := range r.Nodes {
		want := NotScheduled
		if n.Node == "master-1" {
			want = StartFailed
		}
		if n.Outcome != want {
			t.Errorf("%s: %s, want %s", n.Node, n.Outcome, want)
		}
		if n.Node != "master-1" && !h.closed[n.Node] {
			t.Errorf("%s: debug session left open", n.Node)
		}
	}
}

func TestShutdownCancelsWhatWasScheduledWhenANodeFails(t *testing.T) {
	h := newFakeHosts()
	h.failScript["master-0"] = HostCommand
	r := NewReport(fourNodes)
	err := (&Shutdown{Start: h.start, Parallel: 1}).Run(context.Background(), fourNodes, r)
	if !errors.Is(err, ErrRolledBack) {
		t.Fatalf("err = %v", err)
	}
	want := map[string]Outcome{"worker-0": Cancelled, "worker-1": Cancelled, "master-0": Failed, "master-1": NotScheduled}
	for _, n := range r.Nodes {
		if n.Outcome != want[n.Node] {
			t.Errorf("%s: %s (%s), want %s", n.Node, n.Outcome, n.Detail, want[n.Node])
		}
	}
	if indexOf(h.log, "master-1: "+HostCommand) >= 0 {
		t.Errorf("scheduled on master-1 after master-0 failed: %v", h.log)
	}
	for _, w := range []string{"worker-0", "worker-1"} {
		if i, j := indexOf(h.log, w+": "+HostCommand), indexOf(h.log, w+": "+CancelCommand); i < 0 || j < i {
			t.Errorf("%s not cancelled after being scheduled: %v", w, h.log)
		}
	}
	if r.Scheduled != 0 {
		t.Errorf("scheduled = %d", r.Scheduled)
	}

	// A cancellation that fails is reported as such: that host powers off.
	h = newFakeHosts()
	h.failScript["master-0"] = HostCommand
	h.failScript["worker-1"] = CancelCommand
	r = NewReport(fourNodes)
	err = (&Shutdown{Start: h.start, Parallel: 1}).Run(context.Background(), fourNodes, r)
	if !errors.Is(err, ErrPartlyScheduled) || r.Scheduled != 1 || r.Nodes[1].Outcome != CancelFailed {
		t.Errorf("err = %v, report %+v", err, r.Nodes)
	}
}

// cancelOn cancels the run's context when the shutdown is scheduled on
// node: the administrator's Ctrl-C, mid-way.
type cancelOn struct {
	*fakeHosts
	node   string
	cancel context.CancelFunc
}

func (c *cancelOn) start(ctx context.Context, node string) (debugnode.Runner, error) {
	r, err := c.fakeHosts.start(ctx, node)
	if err != nil {
		return nil, err
	}
	return &cancellingRunner{fakeRunner: r.(*fakeRunner), c: c}, nil
}

type cancellingRunner struct {
	*fakeRunner
	c *cancelOn
}

// Host takes the command, and the Ctrl-C lands while `shutdown -h 1` runs
// on the chosen node: its answer comes back only if the call was not cut
// off by the interruption.
func (r *cancellingRunner) Host(ctx context.Context, script string, env map[string]string, stdout, stderr io.Writer) (int, error) {
	code, err := r.fakeRunner.Host(ctx, script, env, stdout, stderr)
	if r.node == r.c.node && script == HostCommand {
		r.c.cancel()
		if ctx.Err() != nil {
			return -1, fmt.Errorf("stream closed: %w", ctx.Err())
		}
	}
	return code, err
}

// runInterruptedOn runs a shutdown of fourNodes, one host at a time, that
// the administrator interrupts while node schedules it; the run must say
// it was interrupted.
func runInterruptedOn(t *testing.T, node string) (*cancelOn, *ShutdownReport) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := &cancelOn{fakeHosts: newFakeHosts(), node: node, cancel: cancel}
	r := NewReport(fourNodes)
	err := (&Shutdown{Start: c.start, Parallel: 1}).Run(ctx, fourNodes, r)
	if err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("err = %v", err)
	}
	return c, r
}

func TestShutdownInterruptedCancelsWhatWasScheduled(t *testing.T) {
	c, r := runInterruptedOn(t, "worker-1")
	want := map[string]Outcome{"worker-0": Cancelled, "worker-1": Cancelled, "master-0": NotScheduled, "master-1": NotScheduled}
	for _, n := range r.Nodes {
		if n.Outcome != want[n.Node] {
			t.Errorf("%s: %s, want %s", n.Node, n.Outcome, want[n.Node])
		}
		if !c.closed[n.Node] {
			t.Errorf("%s: debug session left open after the interruption", n.Node)
		}
	}
}

func TestShutdownInterruptedMidwayStillCancelsWhatTheHostTook(t *testing.T) {
	c, r := runInterruptedOn(t, "master-0")
	// master-0 scheduled it as the interruption came: it is cancelled like
	// the workers; master-1 was never asked.
	want := map[string]Outcome{"worker-0": Cancelled, "worker-1": Cancelled, "master-0": Cancelled, "master-1": NotScheduled}
	for _, n := range r.Nodes {
		if n.Outcome != want[n.Node] {
			t.Errorf("%s: %s (%s), want %s", n.Node, n.Outcome, n.Detail, want[n.Node])
		}
	}
	if indexOf(c.log, "master-0: "+CancelCommand) < 0 {
		t.Errorf("no `%s` on master-0: %q", CancelCommand, c.log)
	}
}

// brokenRunner's stream breaks on node while `shutdown -h 1` runs there: no
// exit code comes back, so whether the host took it is unknown.
type brokenRunner struct {
	*fakeRunner
	broken string
}

func (r *brokenRunner) Host(ctx context.Context, script string, env map[string]string, stdout, stderr io.Writer) (int, error) {
	code, err := r.fakeRunner.Host(ctx, script, env, stdout, stderr)
	if r.node == r.broken && script == HostCommand {
		return -1, errors.New("error dialing backend: EOF")
	}
	return code, err
}

func TestShutdownCancelsOnAHostWhoseAnswerWasLost(t *testing.T) {
	h := newFakeHosts()
	start := func(ctx context.Context, node string) (debugnode.Runner, error) {
		r, err := h.start(ctx, node)
		if err != nil {
			return nil, err
		}
		return &brokenRunner{fakeRunner: r.(*fakeRunner), broken: "master-0"}, nil
	}
	r := NewReport(fourNodes)
	err := (&Shutdown{Start: start, Parallel: 1}).Run(context.Background(), fourNodes, r)
	if !errors.Is(err, ErrRolledBack) {
		t.Fatalf("err = %v, want ErrRolledBack", err)
	}
	if indexOf(h.log, "master-0: "+CancelCommand) < 0 {
		t.Errorf("no `%s` on master-0, whose answer was lost: %q", CancelCommand, h.log)
	}
	m := r.Nodes[2]
	if m.Node != "master-0" || m.Outcome != Failed || !strings.Contains(m.Detail, "no answer from the host") || !strings.Contains(m.Detail, "in case") {
		t.Errorf("master-0: %s %q", m.Outcome, m.Detail)
	}
	if r.Nodes[0].Outcome != Cancelled || r.Nodes[1].Outcome != Cancelled || r.Nodes[3].Outcome != NotScheduled {
		t.Errorf("report %+v", r.Nodes)
	}

	// The cancellation there fails too: that host may power off, and the
	// run says so.
	h = newFakeHosts()
	h.failScript["master-0"] = CancelCommand
	r = NewReport(fourNodes)
	err = (&Shutdown{Start: start, Parallel: 1}).Run(context.Background(), fourNodes, r)
	if !errors.Is(err, ErrPartlyScheduled) || r.Scheduled != 1 {
		t.Fatalf("err = %v, %d counted as possibly scheduled, want ErrPartlyScheduled and 1", err, r.Scheduled)
	}
	if m := r.Nodes[2]; m.Outcome != CancelFailed || !strings.Contains(m.Detail, "MAY POWER OFF") {
		t.Errorf("master-0: %s %q", m.Outcome, m.Detail)
	}
}

func (r *fakeRunner) Upload(context.Context, io.Reader, int64, string, func(int64, int64)) (debugnode.Transfer, error) {
	return debugnode.Transfer{}, errors.New("no upload in this test")
}
