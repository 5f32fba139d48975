// Package member implements `oc recover member status` and
// `oc recover member replace`.
package member

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/oc-recover/oc-recover/pkg/cmd/internal/clients"
	"github.com/oc-recover/oc-recover/pkg/cmd/internal/options"
	"github.com/oc-recover/oc-recover/pkg/cmd/internal/output"
	"github.com/oc-recover/oc-recover/pkg/era"
	"github.com/oc-recover/oc-recover/pkg/exitcode"
	"github.com/oc-recover/oc-recover/pkg/member"
)

// NewCmdMember returns the member command group.
func NewCmdMember(f genericclioptions.RESTClientGetter, globals *options.GlobalOptions, streams genericiooptions.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "member",
		Short: "Inspect etcd members and replace an unhealthy one",
	}
	cmd.AddCommand(newCmdStatus(f, globals, streams), newCmdReplace(f, globals, streams))
	return cmd
}

// StatusOptions holds `member status`'s flags and clients.
type StatusOptions struct {
	Output string

	globals *options.GlobalOptions
	streams genericiooptions.IOStreams
	getter  genericclioptions.RESTClientGetter
	clients member.Clients
	era     era.Clients
}

func newCmdStatus(f genericclioptions.RESTClientGetter, globals *options.GlobalOptions, streams genericiooptions.IOStreams) *cobra.Command {
	o := &StatusOptions{globals: globals, streams: streams}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show every etcd member, why an unhealthy one is unhealthy, and what to do",
		Long: templates.LongDesc(`
			Show, for every control-plane node, its Machine (instance state), Node
			(Ready, unreachable taint), etcd pod (state, restarts) and etcd member
			(ID, URLs, health as etcd itself reports it), with a diagnosis:
			Healthy, MachineNotRunning, NodeNotReady, EtcdPodCrashlooping or
			Unknown. Then the verdict for the cluster: Healthy, ReplaceMember
			<node> (naming which replacement procedure applies) or QuorumLost
			(restore from a backup instead).

			etcd is reached through the API: a port-forward to a running etcd pod,
			with the etcd-client certificate read into memory only.

			Exits 0 when healthy, 3 when something needs attention.`),
		Example: templates.Examples(`
			{{root}} member status
			{{root}} member status -o json`),
		Args: cobra.NoArgs,
		RunE: options.RunE(f, o),
	}
	cmd.Flags().StringVarP(&o.Output, "output", "o", output.Table, output.FlagUsage)
	return cmd
}

// Complete keeps the getter for Run; member status takes no arguments.
func (o *StatusOptions) Complete(f genericclioptions.RESTClientGetter, _ []string) error {
	o.getter = f
	return nil
}

// Validate checks the flags.
func (o *StatusOptions) Validate() error {
	return output.Validate(o.Output)
}

// connect builds the clients.
func (o *StatusOptions) connect() error {
	set, err := clients.FromGetter(o.getter, 0, 0)
	if err != nil {
		return err
	}
	o.clients = member.Clients{Kube: set.Kube, Machine: set.Machine, Operator: set.Operator, REST: set.REST}
	o.era = set.Era()
	return nil
}

// Run gathers and prints the report.
func (o *StatusOptions) Run(ctx context.Context) error {
	if err := o.connect(); err != nil {
		return err
	}
	ctx, cancel := o.globals.WithTimeout(ctx)
	defer cancel()
	if err := era.Refuse(ctx, o.era); err != nil {
		return err
	}
	r, err := member.Gather(ctx, o.clients, o.globals.CommandName)
	if err != nil {
		return err
	}
	if output.Structured(o.Output) {
		if err := output.Print(o.streams.Out, o.Output, r); err != nil {
			return err
		}
	} else {
		printTable(o.streams.Out, r)
	}
	if r.Verdict != member.VerdictHealthy {
		return exitcode.NeedsAttention(nil)
	}
	return nil
}

func printTable(out io.Writer, r *member.Report) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NODE\tMACHINE\tINSTANCE\tNODE READY\tETCD POD\tRESTARTS\tMEMBER ID\tHEALTHY\tDIAGNOSIS")
	row := func(s member.Status) {
		ready := s.NodeReady
		if s.Unreachable {
			ready += ",unreachable"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", output.OrDash(s.Node), output.OrDash(s.Machine), output.OrDash(s.InstanceState), output.OrDash(ready),
			output.OrDash(s.PodState), s.Restarts, output.OrDash(s.MemberID), healthText(s), s.Diagnosis)
	}
	for _, s := range r.Members {
		row(s)
	}
	for _, s := range r.ExtraMembers {
		row(s)
	}
	_ = w.Flush()
	fmt.Fprintln(out)
	if r.EtcdMembersAvailable != "" {
		fmt.Fprintf(out, "etcd operator: %s\n", r.EtcdMembersAvailable)
	}
	if len(r.ExtraMembers) > 0 {
		var ids []string
		for _, s := range r.ExtraMembers {
			ids = append(ids, s.MemberID+" ("+output.OrDash(s.Node)+")")
		}
		fmt.Fprintf(out, "Extra etcd members that match no control-plane node: %s. Not removed; check them before any replacement.\n", strings.Join(ids, ", "))
	}
	verdict := r.Verdict
	if r.Target != "" {
		verdict += " " + r.Target
	}
	fmt.Fprintf(out, "Verdict: %s\n", verdict)
	fmt.Fprintf(out, "Procedure: %s\n", r.Procedure)
}

func healthText(s member.Status) string {
	if s.Healthy == nil {
		return "unknown"
	}
	if *s.Healthy {
		return "true"
	}
	return "false"
}
