package runbook

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
)

// cluster is the state the steps of a test look at: which steps' effects
// it shows, and which actions ran.
type cluster struct {
	effects map[string]bool
	ran     []string
	failOn  string
}

func (c *cluster) step(title string) Step {
	return Step{
		Title:  title,
		Detail: []string{"detail of " + title},
		Done:   func(context.Context) (bool, error) { return c.effects[title], nil },
		Run: func(_ context.Context, out io.Writer) error {
			c.ran = append(c.ran, title)
			if title == c.failOn {
				return errors.New(title + " failed")
			}
			c.effects[title] = true
			return nil
		},
	}
}

func (c *cluster) steps(titles ...string) []Step {
	var steps []Step
	for _, t := range titles {
		steps = append(steps, c.step(t))
	}
	return steps
}

func TestRunSkipsWhatIsDoneAndRunsTheRestInOrder(t *testing.T) {
	c := &cluster{effects: map[string]bool{"record": true}}
	var out bytes.Buffer
	if err := Run(context.Background(), &out, c.steps("record", "remove", "verify")); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.ran, " "); got != "remove verify" {
		t.Errorf("ran %q, want %q", got, "remove verify")
	}
	want := "[1/3] record: already done\n[2/3] remove\n[3/3] verify\n"
	if out.String() != want {
		t.Errorf("progress:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestRunStopsAtTheFirstErrorAndAgainResumesThere(t *testing.T) {
	c := &cluster{effects: map[string]bool{}, failOn: "remove"}
	steps := c.steps("record", "remove", "verify")
	err := Run(context.Background(), io.Discard, steps)
	if err == nil || err.Error() != "remove failed" {
		t.Fatalf("err = %v, want the step's own error", err)
	}
	if got := strings.Join(c.ran, " "); got != "record remove" {
		t.Fatalf("ran %q, want the run to stop at remove", got)
	}
	c.ran, c.failOn = nil, ""
	if err := Run(context.Background(), io.Discard, steps); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.ran, " "); got != "remove verify" {
		t.Errorf("second run ran %q, want it to resume at remove", got)
	}
}

func TestRunAlwaysRunsAStepWithoutCheck(t *testing.T) {
	ran := 0
	s := Step{Title: "verify", Run: func(context.Context, io.Writer) error { ran++; return nil }}
	for i := 0; i < 2; i++ {
		if err := Run(context.Background(), io.Discard, []Step{s}); err != nil {
			t.Fatal(err)
		}
	}
	if ran != 2 {
		t.Errorf("a step with no Done ran %d times in 2 runs, want 2", ran)
	}
}

func TestRunReturnsACheckErrorWithoutRunningTheStep(t *testing.T) {
	bad := errors.New("cannot read etcd/cluster")
	ran := false
	s := Step{Title: "record",
		Done: func(context.Context) (bool, error) { return false, bad },
		Run:  func(context.Context, io.Writer) error { ran = true; return nil }}
	if err := Run(context.Background(), io.Discard, []Step{s}); !errors.Is(err, bad) || ran {
		t.Errorf("err %v ran %v: want the check's error and nothing run", err, ran)
	}
}

func TestPlanMarksOnlyTheLeadingDoneSteps(t *testing.T) {
	// "verify" shows its effect too, but after a step still to do, its check
	// speaks of a cluster the plan has not reached yet.
	c := &cluster{effects: map[string]bool{"record": true, "remove": true, "verify": true}}
	plan, err := Plan(context.Background(), c.steps("record", "remove", "secrets", "verify"))
	if err != nil {
		t.Fatal(err)
	}
	var got []bool
	for _, p := range plan {
		got = append(got, p.Done)
	}
	if want := []bool{true, true, false, false}; !slices.Equal(got, want) {
		t.Errorf("done %v, want %v", got, want)
	}
	if len(c.ran) != 0 {
		t.Errorf("planning ran %q, want nothing run", c.ran)
	}
}

func TestPrintNumbersTheStepsAsRunDoes(t *testing.T) {
	plan := []Planned{{Title: "record", Detail: []string{"annotate"}, Done: true}, {Title: "remove"}}
	var out bytes.Buffer
	Print(&out, true, "take a backup into /srv", plan)
	want := "Plan (dry run, nothing changed):\n" +
		"  0. take a backup into /srv, and only then:\n" +
		"  1. record [already done]\n" +
		"       annotate\n" +
		"  2. remove\n"
	if out.String() != want {
		t.Errorf("plan:\n%s\nwant:\n%s", out.String(), want)
	}
	out.Reset()
	Print(&out, false, "", plan[1:])
	if want := "Plan:\n  1. remove\n"; out.String() != want {
		t.Errorf("plan:\n%s\nwant:\n%s", out.String(), want)
	}
}
