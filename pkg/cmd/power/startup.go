package power

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/oc-recover/oc-recover/pkg/cmd/internal/clients"
	"github.com/oc-recover/oc-recover/pkg/cmd/internal/options"
	"github.com/oc-recover/oc-recover/pkg/cmd/internal/output"
	"github.com/oc-recover/oc-recover/pkg/cmd/internal/prompt"
	"github.com/oc-recover/oc-recover/pkg/csr"
	"github.com/oc-recover/oc-recover/pkg/era"
	"github.com/oc-recover/oc-recover/pkg/exitcode"
	"github.com/oc-recover/oc-recover/pkg/power"
)

var startupLong = templates.LongDesc(`
	Bring a cluster that was shut down gracefully back (OpenShift 4.5
	documentation, Backup and restore, chapter 4 "Restarting the cluster
	gracefully"),
	once its machines are powered on again (outside this tool).

	Until --timeout, again and again: approve the pending CSRs of nodes
	that pass validation (exactly as "{{root}} csr approve" does: a
	restarted kubelet whose certificate expired asks a new one as the
	node-bootstrapper, then a serving certificate as the node), and wait,
	in the documentation's order, for every control-plane node to be Ready, then
	every worker node, then every cluster operator to be Available and not
	Degraded. A line tells how far along it is whenever that changes. The
	API may not answer at first: that is waited for too.

	Exit 0 once the cluster is up. At --timeout, exit 3 with a report of
	the nodes not Ready, the cluster operators not Available or Degraded
	(with their messages) and the CSRs left pending (with the reason).
	With --dry-run, report the state and the CSRs that would be approved,
	change nothing, and exit 0 if the cluster is up, 3 if not.

	Right after a power-on the API may still show the nodes' status from
	before the shutdown until the node controller notices them; the
	documentation waits about ten minutes after starting the machines.`)

var startupExample = templates.Examples(`
	# After powering the machines on: approve, wait, report; at most 40 minutes
	{{root}} startup --timeout 40m

	# Where does the restart stand, and which CSRs would be approved?
	{{root}} startup --dry-run`)

// DefaultStartupInterval is how often startup looks again.
const DefaultStartupInterval = 2 * time.Second

// StartupOptions holds `startup`'s flags and clients.
type StartupOptions struct {
	Output   string
	Interval time.Duration

	globals  *options.GlobalOptions
	streams  genericiooptions.IOStreams
	getter   genericclioptions.RESTClientGetter
	set      *clients.Set
	approver *csr.Approver
}

// StartupReport is startup's result.
type StartupReport struct {
	DryRun bool `json:"dryRun"`
	power.State
	Phase    power.Phase `json:"phase"`
	Approved int         `json:"approved"`
	// CSRs are the CSRs approved (or, in a dry run, to approve) and those
	// left pending for a reason worth a look.
	CSRs     []csr.Decision `json:"csrs"`
	TimedOut bool           `json:"timedOut,omitempty"`
}

// NewCmdStartup returns the startup command.
func NewCmdStartup(f genericclioptions.RESTClientGetter, globals *options.GlobalOptions, streams genericiooptions.IOStreams) *cobra.Command {
	o := &StartupOptions{Output: output.Table, Interval: DefaultStartupInterval, globals: globals, streams: streams}
	cmd := &cobra.Command{
		Use:     "startup",
		Short:   "After the machines are powered on: approve the nodes' valid CSRs and wait for nodes and cluster operators",
		Long:    startupLong,
		Example: startupExample,
		Args:    cobra.NoArgs,
		RunE:    options.RunE(f, o),
	}
	cmd.Flags().StringVarP(&o.Output, "output", "o", o.Output, "Format of the final report: table, json or yaml (progress then goes to stderr).")
	cmd.Flags().DurationVar(&o.Interval, "interval", o.Interval, "How often to look again.")
	_ = cmd.Flags().MarkHidden("interval")
	return cmd
}

// Complete keeps the getter for Run; startup takes no arguments.
func (o *StartupOptions) Complete(f genericclioptions.RESTClientGetter, _ []string) error {
	o.getter = f
	return nil
}

// Validate checks the flags.
func (o *StartupOptions) Validate() error {
	if err := output.Validate(o.Output); err != nil {
		return err
	}
	if o.Interval <= 0 {
		return exitcode.Usagef("--interval must be positive, got %s", o.Interval)
	}
	return nil
}

// connect builds the clients; approvals go out in parallel.
func (o *StartupOptions) connect() error {
	var err error
	if o.set, err = clients.FromGetter(o.getter, 500, 1000); err != nil {
		return err
	}
	o.approver = &csr.Approver{Kube: o.set.Kube, Machine: o.set.Machine}
	return nil
}

func (o *StartupOptions) human() io.Writer {
	if output.Structured(o.Output) {
		return o.streams.ErrOut
	}
	return o.streams.Out
}

// startupRun is what one run remembers between rounds.
type startupRun struct {
	state     power.State
	haveState bool
	approved  map[string]csr.Decision // by CSR name
	pending   map[string]csr.Decision // left pending, as last decided
	printed   map[string]string       // what was said about each CSR
	confirmed bool
	progress  string
	apiError  string
	// release is set once the API has answered era.RequireSupported.
	release *era.Release
}

// Run approves and waits until the cluster is up or the time is up.
func (o *StartupOptions) Run(ctx context.Context) error {
	if err := o.connect(); err != nil {
		return err
	}
	ctx, cancel := o.globals.WithTimeout(ctx)
	defer cancel()
	s := &startupRun{approved: map[string]csr.Decision{}, pending: map[string]csr.Decision{}, printed: map[string]string{}}
	out := o.human()
	for {
		err := o.round(ctx, s)
		switch {
		case errors.Is(err, errNotConfirmed), era.IsUnsupported(err):
			return err
		case err != nil && ctx.Err() != nil:
			return o.finish(ctx, s)
		case err != nil:
			if msg := err.Error(); msg != s.apiError {
				s.apiError = msg
				fmt.Fprintf(out, "Waiting for the API: %v\n", err)
			}
		default:
			s.apiError = ""
			if o.globals.DryRun || s.state.Phase() == power.Started {
				return o.finish(ctx, s)
			}
		}
		select {
		case <-ctx.Done():
			return o.finish(ctx, s)
		case <-time.After(o.Interval):
		}
	}
}

var errNotConfirmed = errors.New("not confirmed; nothing approved")

// round reads the cluster, approves what is valid, and judges the nodes
// and cluster operators.
func (o *StartupOptions) round(ctx context.Context, s *startupRun) error {
	// The API may not answer yet: that decides nothing, and the next round
	// asks again; only an answer that names an unsupported release stops.
	if s.release == nil {
		rel, err := era.RequireSupported(ctx, o.set.Era())
		if err != nil {
			return err
		}
		s.release = rel
	}
	snap, err := o.approver.Read(ctx)
	if err != nil {
		return err
	}
	ds := csr.Decide(snap.CSRs, snap.Nodes, snap.Machines, nil)
	toApprove := 0
	for _, d := range ds {
		if d.Approve {
			toApprove++
		}
	}
	if o.globals.DryRun {
		csr.DryRun(ds)
	} else {
		if toApprove > 0 && !s.confirmed && !o.globals.Yes && prompt.IsTerminal(o.streams.In) {
			for _, d := range ds {
				if d.Approve {
					fmt.Fprintf(o.human(), "  %s: %s for %s: %s\n", d.Name, d.Kind, d.Node, d.Reason)
				}
			}
			ok, err := prompt.Confirm(o.streams.In, o.human(), fmt.Sprintf("Approve these %d CSR(s), and the valid CSRs of nodes that arrive until the cluster is up?", toApprove))
			if err != nil {
				return err
			}
			if !ok {
				return errNotConfirmed
			}
			s.confirmed = true
		}
		ds, _ = o.approver.Approve(ctx, snap.CSRs, ds)
	}
	o.noteCSRs(s, ds)

	cos, err := o.set.OCConfig.ConfigV1().ClusterOperators().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list cluster operators: %w", err)
	}
	var st power.State
	st.ControlPlane, st.Workers = power.CountNodes(snap.Nodes)
	st.OperatorsOK, st.Operators = power.JudgeOperators(cos.Items)
	st.OperatorsTotal = len(cos.Items)
	s.state, s.haveState = st, true
	if line := st.Progress(len(s.approved)); line != s.progress && st.Phase() != power.Started {
		s.progress = line
		fmt.Fprintln(o.human(), line)
	}
	return nil
}

// noteCSRs records and reports, once each, the CSRs approved and those left
// pending.
func (o *StartupOptions) noteCSRs(s *startupRun, ds []csr.Decision) {
	out := o.human()
	s.pending = map[string]csr.Decision{}
	for _, d := range ds {
		var line string
		switch d.Outcome {
		case csr.Approved, csr.WouldApprove:
			s.approved[d.Name] = d
			verb := "Approved"
			if d.Outcome == csr.WouldApprove {
				verb = "Would approve"
			}
			line = fmt.Sprintf("%s CSR %s (%s, %s): %s", verb, d.Name, d.Kind, dash(d.Node), d.Reason)
		case csr.Failed:
			line = fmt.Sprintf("warning: approving CSR %s failed: %s; trying again", d.Name, d.Error)
		case csr.Pending:
			if !d.NeedsAttention() {
				continue
			}
			s.pending[d.Name] = d
			line = fmt.Sprintf("Left pending CSR %s (%s, requested by %s): %s: %s", d.Name, d.Kind, d.Requester, d.Category, d.Reason)
		default:
			continue
		}
		if s.printed[d.Name] != line {
			s.printed[d.Name] = line
			fmt.Fprintln(out, line)
		}
	}
}

// finish reports: the cluster is up (exit 0), or what is not (exit 3, or 1
// when interrupted).
func (o *StartupOptions) finish(ctx context.Context, s *startupRun) error {
	r := StartupReport{DryRun: o.globals.DryRun, State: s.state, Phase: s.state.Phase(), Approved: len(s.approved), CSRs: []csr.Decision{}}
	for _, d := range s.approved {
		r.CSRs = append(r.CSRs, d)
	}
	for _, d := range s.pending {
		r.CSRs = append(r.CSRs, d)
	}
	sortDecisions(r.CSRs)
	up := s.haveState && r.Phase == power.Started
	r.TimedOut = !up && !o.globals.DryRun
	if !s.haveState {
		r.Phase = power.WaitControlPlane
	}
	if output.Structured(o.Output) {
		if err := output.Print(o.streams.Out, o.Output, r); err != nil {
			return err
		}
	} else {
		o.printReport(r, s)
	}
	switch {
	case up:
		return nil
	case o.globals.DryRun:
		return exitcode.NeedsAttention(nil)
	case ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("interrupted before the cluster was up (waiting for %s)", r.Phase)
	}
	return exitcode.NeedsAttentionf("timed out after %s before the cluster was up (waiting for %s); see the report above", o.globals.Timeout, r.Phase)
}

func (o *StartupOptions) printReport(r StartupReport, s *startupRun) {
	out := o.streams.Out
	if r.Phase == power.Started && s.haveState {
		if r.DryRun {
			fmt.Fprintln(out, "Dry run, nothing changed.")
		}
		fmt.Fprintf(out, "The cluster is up: %d control-plane and %d worker node(s) Ready, %d of %d cluster operators available and not degraded; approved %d CSR(s).\n",
			r.ControlPlane.Total, r.Workers.Total, r.OperatorsOK, r.OperatorsTotal, r.Approved)
		return
	}
	if r.DryRun {
		fmt.Fprintf(out, "Dry run, nothing changed: would approve %d CSR(s).\n", r.Approved)
	} else {
		fmt.Fprintf(out, "The cluster is not up yet (waiting for %s).\n", r.Phase)
	}
	if !s.haveState {
		fmt.Fprintf(out, "The API never answered: %s\n", s.apiError)
		return
	}
	fmt.Fprintf(out, "Control-plane nodes Ready: %d of %d%s\n", r.ControlPlane.Ready, r.ControlPlane.Total, notReadyList(r.ControlPlane.NotReady))
	fmt.Fprintf(out, "Worker nodes Ready: %d of %d%s\n", r.Workers.Ready, r.Workers.Total, notReadyList(r.Workers.NotReady))
	fmt.Fprintf(out, "Cluster operators available and not degraded: %d of %d\n", r.OperatorsOK, r.OperatorsTotal)
	for _, p := range r.Operators {
		fmt.Fprintf(out, "  %s\n", p)
	}
	fmt.Fprintf(out, "CSRs approved: %d\n", r.Approved)
	var pending []csr.Decision
	for _, d := range r.CSRs {
		if d.Outcome == csr.Pending {
			pending = append(pending, d)
		}
	}
	fmt.Fprintf(out, "CSRs left pending: %d\n", len(pending))
	for _, d := range pending {
		fmt.Fprintf(out, "  %s (%s, requested by %s): %s: %s\n", d.Name, d.Kind, d.Requester, d.Category, d.Reason)
	}
}

func notReadyList(names []string) string {
	if len(names) == 0 {
		return ""
	}
	return " (not Ready: " + strings.Join(names, ", ") + ")"
}

func sortDecisions(ds []csr.Decision) {
	sort.Slice(ds, func(i, j int) bool {
		if !ds[i].Created.Equal(ds[j].Created) {
			return ds[i].Created.Before(ds[j].Created)
		}
		return ds[i].Name < ds[j].Name
	})
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
