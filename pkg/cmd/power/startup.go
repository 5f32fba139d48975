package power

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/oc-recover/oc-recover/pkg/cmd/internal/clients"
	"github.com/oc-recover/oc-recover/pkg/cmd/internal/options"
	"github.com/oc-recover/oc-recover/pkg/cmd/internal/output"
	"github.com/oc-recover/oc-recover/pkg/cmd/internal/prompt"
	"github.com/oc-recover/oc-recover/pkg/csr"
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

// startupPrinted is what a run has said, so that each line is said once
// until it changes.
type startupPrinted struct {
	csrs     map[string]string // by CSR name
	progress string
	// apiError is the API's last error since it last answered; answered is
	// set once it has answered a whole round.
	apiError string
	answered bool
}

// Run approves and waits until the cluster is up or the time is up.
func (o *StartupOptions) Run(ctx context.Context) error {
	if err := o.connect(); err != nil {
		return err
	}
	ctx, cancel := o.globals.WithTimeout(ctx)
	defer cancel()
	out := output.HumanWriter(o.Output, o.streams)
	p := &startupPrinted{csrs: map[string]string{}}
	s := &power.Startup{
		Approver:  o.approver,
		Operators: o.set.OpenShiftConfig,
		Era:       o.set.Era(),
		DryRun:    o.globals.DryRun,
		Interval:  o.Interval,
		OnRetry: func(err error) {
			if msg := err.Error(); msg != p.apiError {
				p.apiError = msg
				fmt.Fprintf(out, "Waiting for the API: %v\n", err)
			}
		},
		OnDecision: func(d csr.Decision) {
			if line := csrLine(d); p.csrs[d.Name] != line {
				p.csrs[d.Name] = line
				fmt.Fprintln(out, line)
			}
		},
		OnState: func(st power.State, approved int) {
			p.apiError, p.answered = "", true
			if line := st.Progress(approved); line != p.progress && st.Phase() != power.Started {
				p.progress = line
				fmt.Fprintln(out, line)
			}
		},
	}
	if !o.globals.Yes && prompt.IsTerminal(o.streams.In) {
		s.Confirm = func(ds []csr.Decision) (bool, error) {
			for _, d := range ds {
				if d.Approve {
					fmt.Fprintf(out, "  %s: %s for %s: %s\n", d.Name, d.Kind, d.Node, d.Reason)
				}
			}
			return prompt.Confirm(o.streams.In, out, fmt.Sprintf("Approve these %d CSR(s), and the valid CSRs of nodes that arrive until the cluster is up?", csr.CountApprove(ds)))
		}
	}
	r, err := s.Run(ctx)
	if err != nil {
		return err
	}
	return o.finish(ctx, r, p)
}

// csrLine is what startup says about a CSR approved, failed or left pending.
func csrLine(d csr.Decision) string {
	switch d.Outcome {
	case csr.Approved, csr.WouldApprove:
		verb := "Approved"
		if d.Outcome == csr.WouldApprove {
			verb = "Would approve"
		}
		return fmt.Sprintf("%s CSR %s (%s, %s): %s", verb, d.Name, d.Kind, output.OrDash(d.Node), d.Reason)
	case csr.Failed:
		return fmt.Sprintf("warning: approving CSR %s failed: %s; trying again", d.Name, d.Error)
	}
	return fmt.Sprintf("Left pending CSR %s (%s, requested by %s): %s: %s", d.Name, d.Kind, d.Requester, d.Category, d.Reason)
}

// finish reports: the cluster is up (exit 0), or what is not (exit 3, or 1
// when interrupted).
func (o *StartupOptions) finish(ctx context.Context, r *power.StartupReport, p *startupPrinted) error {
	if output.Structured(o.Output) {
		if err := output.Print(o.streams.Out, o.Output, r); err != nil {
			return err
		}
	} else {
		o.printReport(r, p)
	}
	switch {
	case r.Phase == power.Started:
		return nil
	case o.globals.DryRun:
		return exitcode.NeedsAttention(nil)
	case ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("interrupted before the cluster was up (waiting for %s)", r.Phase)
	}
	return exitcode.NeedsAttentionf("timed out after %s before the cluster was up (waiting for %s); see the report above", o.globals.Timeout, r.Phase)
}

func (o *StartupOptions) printReport(r *power.StartupReport, p *startupPrinted) {
	out := o.streams.Out
	if r.Phase == power.Started {
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
	if !p.answered {
		fmt.Fprintf(out, "The API never answered: %s\n", p.apiError)
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
