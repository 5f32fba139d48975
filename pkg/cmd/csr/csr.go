// Package csr implements `oc recover csr approve`.
package csr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
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
)

// NewCmdCSR returns the csr command group.
func NewCmdCSR(f genericclioptions.RESTClientGetter, globals *options.GlobalOptions, streams genericiooptions.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "csr",
		Short: "Approve the valid certificate signing requests of nodes",
	}
	cmd.AddCommand(newCmdApprove(f, globals, streams))
	return cmd
}

var approveLong = templates.LongDesc(`
	Approve the pending certificate signing requests (CSRs) of nodes that
	pass validation, and list every pending CSR with the decision and the
	reason: the step of the restart and certificate-recovery procedures
	that says "approve each valid CSR".

	Approved: node client certificates (signer
	kubernetes.io/kube-apiserver-client-kubelet) asked by the
	node-bootstrapper service account, with exactly its groups, or renewed
	by the node itself, with subject CN system:node:NAME and O
	system:nodes, no subject alternative names, usages digital signature
	and client auth (and key encipherment); and kubelet serving
	certificates (signer
	kubernetes.io/kubelet-serving) asked by the node itself for its own
	name and only its own (or its Machine's) DNS names and IP addresses,
	usages digital signature and server auth (and key encipherment).

	The bootstrapper may ask a client certificate only for a new node (a
	Machine without a node yet announces it), for a node that exists and
	is not Ready (its certificate expired or was lost), or for a new node
	the administrator names with --new-node or confirms at the prompt. A
	bootstrapper CSR naming a Ready node would take that node over: it is
	refused. A CSR whose Organization holds anything but system:nodes (such
	as system:masters) is never approved. Of several valid CSRs for the
	same node and certificate only the newest is approved; the older ones
	are left pending as superseded. Everything else is left alone.

	With --watch, keep approving as new CSRs arrive until every node is
	Ready (exit 0), or give up at --timeout with a report of the nodes not
	Ready and the CSRs left pending (exit 3).

	Without --watch: exit 0 when nothing is left needing attention, 3 when
	some pending CSRs were left (superseded ones do not count).`)

var approveExample = templates.Examples(`
	# Show every pending CSR and what would be done with it
	{{root}} csr approve --dry-run

	# Approve the valid ones
	{{root}} csr approve

	# After a restart: keep approving until every node is Ready, at most 20 minutes
	{{root}} csr approve --watch --timeout 20m

	# A user-provisioned host that no Machine announces joins the cluster
	{{root}} csr approve --new-node worker-3.example.com`)

// DefaultInterval is how often --watch looks for new CSRs.
const DefaultInterval = 2 * time.Second

// ApproveOptions holds `csr approve`'s flags and clients.
type ApproveOptions struct {
	Output   string
	Watch    bool
	NewNodes []string
	Interval time.Duration

	globals  *options.GlobalOptions
	streams  genericiooptions.IOStreams
	getter   genericclioptions.RESTClientGetter
	approver *csr.Approver
	era      era.Clients
}

func newCmdApprove(f genericclioptions.RESTClientGetter, globals *options.GlobalOptions, streams genericiooptions.IOStreams) *cobra.Command {
	o := &ApproveOptions{Output: output.Table, Interval: DefaultInterval, globals: globals, streams: streams}
	cmd := &cobra.Command{
		Use:     "approve",
		Short:   "Approve the valid pending CSRs of nodes; list every pending CSR with the decision and the reason",
		Long:    approveLong,
		Example: approveExample,
		Args:    cobra.NoArgs,
		RunE:    options.RunE(f, o),
	}
	cmd.Flags().StringVarP(&o.Output, "output", "o", o.Output, output.FlagUsage)
	cmd.Flags().BoolVar(&o.Watch, "watch", o.Watch, "Keep approving valid CSRs as they arrive until every node is Ready, or until --timeout.")
	cmd.Flags().StringArrayVar(&o.NewNodes, "new-node", o.NewNodes, "Name of a new node that no Machine announces (a user-provisioned host) whose bootstrapper CSR may be approved. Repeatable.")
	cmd.Flags().DurationVar(&o.Interval, "interval", o.Interval, "How often --watch looks for new CSRs.")
	_ = cmd.Flags().MarkHidden("interval")
	return cmd
}

// Complete keeps the getter for Run; csr approve takes no arguments.
func (o *ApproveOptions) Complete(f genericclioptions.RESTClientGetter, _ []string) error {
	o.getter = f
	return nil
}

// Validate checks the flags.
func (o *ApproveOptions) Validate() error {
	if err := output.Validate(o.Output); err != nil {
		return err
	}
	for _, n := range o.NewNodes {
		if errs := validation.IsDNS1123Subdomain(n); len(errs) > 0 {
			return exitcode.Usagef("--new-node %q is not a node name: %s", n, strings.Join(errs, "; "))
		}
	}
	if o.Interval <= 0 {
		return exitcode.Usagef("--interval must be positive, got %s", o.Interval)
	}
	return nil
}

// connect builds the clients. Approvals go out in parallel, so the
// client-side rate limit is raised well above client-go's default of 5
// requests a second.
func (o *ApproveOptions) connect() error {
	set, err := clients.FromGetter(o.getter, 500, 1000)
	if err != nil {
		return err
	}
	o.approver = &csr.Approver{Kube: set.Kube, Machine: set.Machine}
	o.era = set.Era()
	return nil
}

// Run approves once, or until every node is Ready with --watch.
func (o *ApproveOptions) Run(ctx context.Context) error {
	if err := o.connect(); err != nil {
		return err
	}
	ctx, cancel := o.globals.WithTimeout(ctx)
	defer cancel()
	if err := era.Refuse(ctx, o.era); err != nil {
		return err
	}
	rounds := &csr.Rounds{Approver: o.approver, NewNodes: sets.New(o.NewNodes...), DryRun: o.globals.DryRun, Interval: o.Interval}
	if !o.globals.Yes && prompt.IsTerminal(o.streams.In) {
		rounds.ConfirmNewNode, rounds.Confirm = o.confirmNewNode, o.confirm
	}
	switch {
	case o.globals.DryRun:
		return o.dryRun(ctx, rounds)
	case o.Watch:
		return o.watch(ctx, rounds)
	default:
		return o.once(ctx, rounds)
	}
}

// confirmNewNode asks whether the node a bootstrapper CSR names, which no
// Machine announces, is a new host.
func (o *ApproveOptions) confirmNewNode(d csr.Decision) (bool, error) {
	return prompt.Confirm(o.streams.In, o.promptOut(), fmt.Sprintf(
		"CSR %s asks a client certificate for %s, which is no node yet and which no Machine announces. Is %s a new host of yours?", d.Name, d.Node, d.Node))
}

// confirm shows the decisions and asks before the first approval.
func (o *ApproveOptions) confirm(ds []csr.Decision) (bool, error) {
	n := csr.CountApprove(ds)
	printTable(o.promptOut(), ds, true)
	question := fmt.Sprintf("Approve the %d CSR(s) marked approve above?", n)
	if o.Watch {
		question = fmt.Sprintf("Approve the %d CSR(s) marked approve above, and the valid CSRs that arrive until every node is Ready?", n)
	}
	return prompt.Confirm(o.streams.In, o.promptOut(), question)
}

func (o *ApproveOptions) dryRun(ctx context.Context, rounds *csr.Rounds) error {
	snap, ds, err := rounds.Once(ctx)
	if err != nil {
		return err
	}
	r := report(ds)
	r.DryRun = true
	if o.Watch {
		r.NodesNotReady = notReady(snap, rounds.NewNodes)
	}
	if output.Structured(o.Output) {
		if err := output.Print(o.streams.Out, o.Output, r); err != nil {
			return err
		}
	} else {
		out := o.streams.Out
		printTable(out, ds, true)
		fmt.Fprintf(out, "Dry run, nothing changed: would approve %d CSR(s), leave %d pending.\n", r.Approved, r.LeftPending)
		if o.Watch {
			fmt.Fprintf(out, "With --watch, would keep approving until every node is Ready; not Ready now: %s.\n", listOrNone(r.NodesNotReady))
		}
	}
	return exitFor(r)
}

func (o *ApproveOptions) once(ctx context.Context, rounds *csr.Rounds) error {
	_, ds, err := rounds.Once(ctx)
	if err != nil {
		return err
	}
	r := report(ds)
	if output.Structured(o.Output) {
		if err := output.Print(o.streams.Out, o.Output, r); err != nil {
			return err
		}
	} else {
		printTable(o.streams.Out, ds, true)
		fmt.Fprintln(o.streams.Out, summary(r))
	}
	if err := failures(ds); err != nil {
		return err
	}
	return exitFor(r)
}

// watch runs rounds until every node is Ready or the time is up, printing
// each CSR again only when what is said about it changes.
func (o *ApproveOptions) watch(ctx context.Context, rounds *csr.Rounds) error {
	seen := map[string]csr.Decision{} // the latest decision about every CSR seen pending
	printed := map[string]string{}
	header := false
	var waiting string
	var lastNotReady []string
	structured := output.Structured(o.Output)
	out := o.streams.Out
	rounds.Retry = func(err error) { fmt.Fprintf(o.streams.ErrOut, "warning: %v; trying again\n", err) }
	err := rounds.Until(ctx, func(_ context.Context, snap *csr.Snapshot, ds []csr.Decision) (bool, error) {
		var changed []csr.Decision
		for _, d := range ds {
			if prev, ok := seen[d.Name]; ok && prev.Outcome == csr.Approved {
				continue
			}
			seen[d.Name] = d
			if key := string(d.Outcome) + d.Reason + d.Error; printed[d.Name] != key {
				printed[d.Name] = key
				changed = append(changed, d)
			}
		}
		if !structured && len(changed) > 0 {
			printTable(out, changed, !header)
			header = true
		}
		for _, d := range ds {
			if d.Outcome == csr.Failed {
				fmt.Fprintf(o.streams.ErrOut, "warning: %s; trying again\n", d.Error)
			}
		}
		lastNotReady = notReady(snap, rounds.NewNodes)
		if len(lastNotReady) == 0 {
			return true, nil
		}
		if w := strings.Join(lastNotReady, ", "); !structured && w != waiting {
			waiting = w
			fmt.Fprintf(out, "Waiting for %d node(s) to be Ready: %s\n", len(lastNotReady), w)
		}
		return false, nil
	})
	switch {
	case err == nil:
		r := report(values(seen))
		if structured {
			return output.Print(out, o.Output, r)
		}
		fmt.Fprintln(out, summary(r))
		fmt.Fprintln(out, "Every node is Ready.")
		return nil
	case ctx.Err() != nil:
		return o.timedOut(ctx, seen, lastNotReady)
	}
	return err
}

// timedOut reports, when the time is up (or the run interrupted), the
// nodes not Ready and the CSRs left pending.
func (o *ApproveOptions) timedOut(ctx context.Context, seen map[string]csr.Decision, nodesNotReady []string) error {
	r := report(values(seen))
	r.TimedOut, r.NodesNotReady = true, nodesNotReady
	var pending []string
	for _, d := range r.CSRs {
		if d.NeedsAttention() {
			pending = append(pending, d.Name+" ("+string(d.Category)+")")
		}
	}
	if output.Structured(o.Output) {
		if err := output.Print(o.streams.Out, o.Output, r); err != nil {
			return err
		}
	} else {
		fmt.Fprintln(o.streams.Out, summary(r))
		fmt.Fprintf(o.streams.Out, "Nodes not Ready: %s\n", listOrNone(nodesNotReady))
		fmt.Fprintf(o.streams.Out, "CSRs left pending: %s\n", listOrNone(pending))
	}
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("interrupted before every node was Ready: %d node(s) not Ready, %d CSR(s) left pending", len(nodesNotReady), len(pending))
	}
	return exitcode.NeedsAttentionf("timed out after %s before every node was Ready: %d node(s) not Ready, %d CSR(s) left pending",
		o.globals.Timeout, len(nodesNotReady), len(pending))
}

// promptOut is where questions go: not into JSON or YAML on stdout.
func (o *ApproveOptions) promptOut() io.Writer { return output.HumanWriter(o.Output, o.streams) }

// notReady are the nodes not Ready, and the nodes named with --new-node
// (or confirmed) that have not registered yet.
func notReady(snap *csr.Snapshot, newNodes sets.Set[string]) []string {
	out := sets.New(csr.NodesNotReady(snap.Nodes)...)
	missing := newNodes.Clone()
	for _, n := range snap.Nodes {
		missing.Delete(n.Name)
	}
	return sets.List(out.Union(missing))
}

func report(ds []csr.Decision) csr.Report {
	r := csr.Report{CSRs: ds}
	if r.CSRs == nil {
		r.CSRs = []csr.Decision{}
	}
	for _, d := range ds {
		switch d.Outcome {
		case csr.Approved, csr.WouldApprove:
			r.Approved++
		case csr.Pending:
			r.LeftPending++
		}
	}
	return r
}

func values(m map[string]csr.Decision) []csr.Decision {
	out := make([]csr.Decision, 0, len(m))
	for _, d := range m {
		out = append(out, d)
	}
	csr.SortDecisions(out)
	return out
}

// exitFor is 3 when a CSR was left pending for a reason worth a look.
func exitFor(r csr.Report) error {
	for _, d := range r.CSRs {
		if d.NeedsAttention() {
			return exitcode.NeedsAttention(nil)
		}
	}
	return nil
}

func failures(ds []csr.Decision) error {
	var errs []string
	for _, d := range ds {
		if d.Outcome == csr.Failed {
			errs = append(errs, d.Error)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%d approval(s) failed: %s", len(errs), strings.Join(errs, "; "))
}

func summary(r csr.Report) string {
	superseded, attention := 0, 0
	for _, d := range r.CSRs {
		switch {
		case d.Outcome == csr.Pending && d.Category == csr.Superseded:
			superseded++
		case d.NeedsAttention():
			attention++
		}
	}
	return fmt.Sprintf("Approved %d CSR(s); left %d pending (%d superseded, %d needing attention).", r.Approved, r.LeftPending, superseded, attention)
}

func printTable(out io.Writer, ds []csr.Decision, header bool) {
	if len(ds) == 0 {
		if header {
			fmt.Fprintln(out, "No pending CSRs.")
		}
		return
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	if header {
		fmt.Fprintln(w, "NAME\tAGE\tKIND\tNODE\tOUTCOME\tREASON")
	}
	now := time.Now()
	for _, d := range ds {
		outcome := string(d.Outcome)
		if outcome == "" {
			outcome = "Pending"
			if d.Approve {
				outcome = "Approve"
			}
		}
		reason := d.Reason
		if d.Error != "" {
			reason += ": " + d.Error
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", d.Name, duration.HumanDuration(now.Sub(d.Created)), d.Kind, output.OrDash(d.Node), outcome, reason)
	}
	_ = w.Flush()
}

func listOrNone(items []string) string {
	if len(items) == 0 {
		return "none"
	}
	return strings.Join(items, ", ")
}
