// Package runbook carries out a recovery procedure as an ordered list of
// steps, each with a check of whether the cluster already shows its effect
// and an action that brings it about. It is level-triggered: every run reads
// the cluster again, skips what is already done and goes on from there, so
// a command that was interrupted is resumed by running it again. The plan a
// command prints before it asks (and with --dry-run) comes from the same
// table the run executes, so the two cannot disagree.
package runbook

import (
	"context"
	"fmt"
	"io"
)

// Step is one step of a procedure.
type Step struct {
	// Title is what the step does, in a few words ("delete machine m-0").
	Title string
	// Detail lists what exactly it changes: objects, patches, host commands.
	Detail []string
	// Done reports whether the cluster already shows the step's effect. A
	// nil Done means the step always runs (a final verification, say).
	Done func(ctx context.Context) (bool, error)
	// Run carries the step out, writing progress lines to out.
	Run func(ctx context.Context, out io.Writer) error
}

func (s Step) done(ctx context.Context) (bool, error) {
	if s.Done == nil {
		return false, nil
	}
	return s.Done(ctx)
}

// Planned is a step as the plan shows it.
type Planned struct {
	Title  string   `json:"title"`
	Detail []string `json:"detail,omitempty"`
	Done   bool     `json:"done"`
}

// Plan judges the steps against the cluster and returns them as the plan
// shows them. Only the leading steps are judged: a later step's check speaks
// of the cluster as the earlier steps leave it (a member that is already
// gone from etcd means something else before its data was moved aside), and
// Run judges each again when it comes to it.
func Plan(ctx context.Context, steps []Step) ([]Planned, error) {
	plan := make([]Planned, 0, len(steps))
	judging := true
	for _, s := range steps {
		done := false
		if judging {
			var err error
			if done, err = s.done(ctx); err != nil {
				return nil, err
			}
			judging = done
		}
		plan = append(plan, Planned{Title: s.Title, Detail: s.Detail, Done: done})
	}
	return plan, nil
}

// Print writes the plan under a "Plan:" heading (or "Plan (dry run, nothing
// changed):"), one numbered step a line with its details indented below.
// before, when not empty, is something the command does first and outside
// the resumable steps (taking a backup); it is printed as step 0, "..., and
// only then:".
func Print(out io.Writer, dryRun bool, before string, plan []Planned) {
	if dryRun {
		fmt.Fprintln(out, "Plan (dry run, nothing changed):")
	} else {
		fmt.Fprintln(out, "Plan:")
	}
	if before != "" {
		fmt.Fprintf(out, "  0. %s, and only then:\n", before)
	}
	for i, s := range plan {
		mark := ""
		if s.Done {
			mark = " [already done]"
		}
		fmt.Fprintf(out, "  %d. %s%s\n", i+1, s.Title, mark)
		for _, d := range s.Detail {
			fmt.Fprintf(out, "       %s\n", d)
		}
	}
}

// Run carries out the steps in order, judging each against the cluster
// just before it: a step already done is reported as such and skipped, the
// others run. Each step is announced as "[3/9] title". The first error
// stops the run and is returned as it is; running again resumes.
func Run(ctx context.Context, out io.Writer, steps []Step) error {
	for i, s := range steps {
		done, err := s.done(ctx)
		if err != nil {
			return err
		}
		if done {
			fmt.Fprintf(out, "[%d/%d] %s: already done\n", i+1, len(steps), s.Title)
			continue
		}
		fmt.Fprintf(out, "[%d/%d] %s\n", i+1, len(steps), s.Title)
		if err := s.Run(ctx, out); err != nil {
			return err
		}
	}
	return nil
}
