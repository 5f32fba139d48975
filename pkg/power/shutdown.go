package power

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/oc-recover/oc-recover/pkg/debugnode"
)

// HostCommand is what runs on every host (OpenShift 4.5 documentation, Backup
// and restore, 3.2 "Shutting down the cluster"): power off in a
// minute, which lets the pods terminate gracefully.
const HostCommand = "shutdown -h 1"

// CancelCommand takes a scheduled shutdown back.
const CancelCommand = "shutdown -c"

// Outcome is what became of one node.
type Outcome string

const (
	// Scheduled: the host powers off in a minute.
	Scheduled Outcome = "Scheduled"
	// StartFailed: the debug pod could not run on the node; nothing was
	// scheduled anywhere.
	StartFailed Outcome = "DebugPodFailed"
	// Failed: scheduling the shutdown failed.
	Failed Outcome = "Failed"
	// Cancelled: scheduled, then taken back with `shutdown -c` because
	// another node failed (or the run was interrupted).
	Cancelled Outcome = "Cancelled"
	// CancelFailed: scheduled, and taking it back failed: the host WILL
	// power off.
	CancelFailed Outcome = "CancelFailed"
	// NotScheduled: ready, but nothing was scheduled on it because another
	// node failed first.
	NotScheduled Outcome = "NotScheduled"
	// WouldSchedule: a dry run.
	WouldSchedule Outcome = "WouldSchedule"
)

// NodeResult is one node's line of the report.
type NodeResult struct {
	Target
	Outcome Outcome `json:"outcome"`
	// Detail is what the host answered, or why it failed.
	Detail string `json:"detail,omitempty"`
	// At is when the shutdown was scheduled.
	At *time.Time `json:"at,omitempty"`
}

// ShutdownReport is the result of a shutdown.
type ShutdownReport struct {
	DryRun      bool           `json:"dryRun"`
	Nodes       []NodeResult   `json:"nodes"`
	Scheduled   int            `json:"scheduled"`
	Signer      *SignerExpiry  `json:"signer,omitempty"`
	RestartBy   time.Time      `json:"restartBy"`
	Backup      string         `json:"backup,omitempty"`
	Forced      []string       `json:"forced,omitempty"`
	Warnings    []string       `json:"warnings,omitempty"`
	PowerOffBy  *time.Time     `json:"powerOffBy,omitempty"`
	nodesByName map[string]int // index into Nodes
}

func (r *ShutdownReport) node(name string) *NodeResult {
	return &r.Nodes[r.nodesByName[name]]
}

// ErrNothingScheduled: a debug pod could not start on some node, so no
// shutdown was scheduled on any.
var ErrNothingScheduled = errors.New("not every node can run a debug pod; no shutdown was scheduled")

// ErrRolledBack: scheduling failed (or was interrupted) on some node and
// every shutdown already scheduled was cancelled.
var ErrRolledBack = errors.New("scheduling the shutdown failed on some node; the shutdowns already scheduled were cancelled")

// ErrPartlyScheduled: some shutdowns could not be cancelled: those hosts
// power off.
var ErrPartlyScheduled = errors.New("some shutdowns could not be cancelled: those hosts power off")

// Shutdown schedules the power-off of every node, all or nothing: it first
// starts a debug pod on every node, and schedules nothing unless all of them
// run; it then schedules `shutdown -h 1` on the workers and then on the
// control plane; should scheduling fail on a node (or the run be
// interrupted), it cancels the shutdowns already scheduled with
// `shutdown -c` while their debug pods still run. The debug pods and their
// namespaces are removed before the minute is up, while the API still
// answers.
type Shutdown struct {
	// Start starts a debug session on a node (debugnode.Engine.Runner).
	Start debugnode.StartFunc
	// Parallel bounds the debug pods started, and the shutdowns scheduled,
	// at once (default 16).
	Parallel int
	// Log receives a line per step.
	Log io.Writer
	// Command is how the user runs the plugin ("oc recover", "kubectl
	// recover"), for the commands its warnings advise; empty means
	// "oc recover".
	Command string
}

// command is s.Command, or "oc recover" when the caller gave none.
func (s *Shutdown) command() string {
	if s.Command == "" {
		return "oc recover"
	}
	return s.Command
}

func (s *Shutdown) logf(format string, args ...any) {
	if s.Log != nil {
		fmt.Fprintf(s.Log, format+"\n", args...)
	}
}

// NewReport is the report of a shutdown of targets, every node NotScheduled.
func NewReport(targets []Target) *ShutdownReport {
	r := &ShutdownReport{nodesByName: map[string]int{}}
	for i, t := range targets {
		r.Nodes = append(r.Nodes, NodeResult{Target: t, Outcome: NotScheduled})
		r.nodesByName[t.Node] = i
	}
	return r
}

// Run shuts targets down (in their order, see ShutdownOrder) and fills r.
func (s *Shutdown) Run(ctx context.Context, targets []Target, r *ShutdownReport) error {
	sessions := make([]debugnode.Runner, len(targets))
	defer s.closeAll(ctx, sessions, r)

	s.logf("Starting a debug pod on each of the %d nodes", len(targets))
	failed := 0
	var mu sync.Mutex
	s.parallel(len(targets), func(i int) {
		run, err := s.Start(ctx, targets[i].Node)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			failed++
			n := r.node(targets[i].Node)
			n.Outcome, n.Detail = StartFailed, err.Error()
			return
		}
		sessions[i] = run
	})
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted before any shutdown was scheduled: %w", context.Cause(ctx))
	}
	if failed > 0 {
		return ErrNothingScheduled
	}

	// Workers first, then the control plane: the API stays up until every
	// shutdown is scheduled.
	var phases [][]int
	for i, t := range targets {
		if len(phases) == 0 || targets[phases[len(phases)-1][0]].Role != t.Role {
			phases = append(phases, nil)
		}
		phases[len(phases)-1] = append(phases[len(phases)-1], i)
	}
	var scheduled, unanswered []int
	problem := false
	for _, phase := range phases {
		role := targets[phase[0]].Role
		s.logf("Scheduling `%s` on %d %s node(s)", HostCommand, len(phase), role)
		s.parallel(len(phase), func(j int) {
			i := phase[j]
			mu.Lock()
			stop := problem
			mu.Unlock()
			if stop || ctx.Err() != nil {
				return
			}
			// A scheduling under way is not cut off by Ctrl-C: the host
			// may already have taken it, and only an answer tells whether
			// it needs taking back.
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), hostCommandTimeout)
			defer cancel()
			out, err := host(sctx, sessions[i], HostCommand)
			now := time.Now()
			mu.Lock()
			defer mu.Unlock()
			n := r.node(targets[i].Node)
			if err != nil {
				problem = true
				n.Outcome, n.Detail = Failed, err.Error()
				if errors.Is(err, errNoAnswer) {
					// No exit code came back: the host may have scheduled
					// it, so it is cancelled along with the others.
					unanswered = append(unanswered, i)
				}
				return
			}
			n.Outcome, n.Detail, n.At = Scheduled, out, &now
			scheduled = append(scheduled, i)
		})
		if problem || ctx.Err() != nil {
			break
		}
	}
	if !problem && ctx.Err() == nil {
		r.Scheduled = len(scheduled)
		for _, n := range r.Nodes {
			if n.At != nil && (r.PowerOffBy == nil || n.At.After(*r.PowerOffBy)) {
				r.PowerOffBy = n.At
			}
		}
		if r.PowerOffBy != nil {
			t := r.PowerOffBy.Add(time.Minute)
			r.PowerOffBy = &t
		}
		return nil
	}
	// Take back what was scheduled, while the debug pods still run; the
	// interruption does not stop this.
	why := "scheduling failed on another node"
	if !problem {
		why = "interrupted"
	}
	if len(unanswered) > 0 {
		s.logf("Cancelling the %d shutdown(s) already scheduled, and on the %d node(s) whose answer did not come back (%s)", len(scheduled), len(unanswered), why)
	} else {
		s.logf("Cancelling the %d shutdown(s) already scheduled (%s)", len(scheduled), why)
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), hostCommandTimeout)
	defer cancel()
	stuck := 0
	takeBack := append(append([]int(nil), scheduled...), unanswered...)
	s.parallel(len(takeBack), func(j int) {
		i := takeBack[j]
		uncertain := j >= len(scheduled)
		_, err := host(cctx, sessions[i], CancelCommand)
		mu.Lock()
		defer mu.Unlock()
		n := r.node(targets[i].Node)
		switch {
		case err != nil && uncertain:
			stuck++
			n.Outcome, n.Detail = CancelFailed, fmt.Sprintf("%s; `%s` failed too: %v; THIS HOST MAY POWER OFF", n.Detail, CancelCommand, err)
		case err != nil:
			stuck++
			n.Outcome, n.Detail = CancelFailed, fmt.Sprintf("scheduled, and `%s` failed: %v; THIS HOST POWERS OFF", CancelCommand, err)
		case uncertain:
			n.Detail = fmt.Sprintf("%s; `%s` run in case the host had scheduled it", n.Detail, CancelCommand)
		default:
			n.Outcome, n.Detail = Cancelled, fmt.Sprintf("scheduled, then cancelled with `%s` (%s)", CancelCommand, why)
		}
	})
	r.Scheduled = stuck
	switch {
	case stuck > 0:
		return ErrPartlyScheduled
	case !problem:
		return fmt.Errorf("interrupted (%v); the shutdowns already scheduled were cancelled", context.Cause(ctx))
	}
	return ErrRolledBack
}

// hostCommandTimeout bounds scheduling and cancelling a shutdown on a host;
// both answer at once when the host is well.
const hostCommandTimeout = 30 * time.Second

// errNoAnswer marks a host command whose exit code never came back (the
// debug pod's stream broke): it may or may not have run.
var errNoAnswer = errors.New("no answer from the host")

// host runs command on the host and returns what it printed; a non-zero
// exit is an error.
func host(ctx context.Context, run debugnode.Runner, command string) (string, error) {
	var stdout, stderr bytes.Buffer
	code, err := run.Host(ctx, command, nil, &stdout, &stderr)
	out := strings.TrimSpace(strings.TrimSpace(stdout.String()) + "\n" + strings.TrimSpace(stderr.String()))
	if err != nil {
		return out, fmt.Errorf("`%s` on %s: %w: %w", command, run.Node(), errNoAnswer, err)
	}
	if code != 0 {
		return out, fmt.Errorf("`%s` on %s exited %d: %s", command, run.Node(), code, out)
	}
	return out, nil
}

// closeAll removes every debug pod and namespace, with a time budget of its
// own (it also runs after an interruption).
func (s *Shutdown) closeAll(ctx context.Context, sessions []debugnode.Runner, r *ShutdownReport) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	var mu sync.Mutex
	open := 0
	for _, run := range sessions {
		if run != nil {
			open++
		}
	}
	if open == 0 {
		return
	}
	s.parallel(len(sessions), func(i int) {
		if sessions[i] == nil {
			return
		}
		if err := sessions[i].Close(cctx); err != nil {
			mu.Lock()
			r.Warnings = append(r.Warnings, fmt.Sprintf("debug pod on %s not removed: %v (run `%s cleanup` once the cluster is up again)", sessions[i].Node(), err, s.command()))
			mu.Unlock()
		}
	})
	s.logf("Removed the %d debug pod(s) and their namespaces", open)
}

// parallel runs do(0..n-1) on at most s.Parallel goroutines.
func (s *Shutdown) parallel(n int, do func(i int)) {
	workers := s.Parallel
	if workers <= 0 {
		workers = 16
	}
	sem := make(chan struct{}, workers)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			do(i)
		}(i)
	}
	wg.Wait()
}
