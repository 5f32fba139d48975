// Package redeploy implements `oc recover redeploy`.
package redeploy

import (
	"context"
	"fmt"
	"time"

	operatorclient "github.com/openshift/client-go/operator/clientset/versioned"
	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/oc-recover/oc-recover/pkg/cmd/internal/clients"
	"github.com/oc-recover/oc-recover/pkg/cmd/internal/options"
	"github.com/oc-recover/oc-recover/pkg/cmd/internal/prompt"
	"github.com/oc-recover/oc-recover/pkg/era"
	"github.com/oc-recover/oc-recover/pkg/exitcode"
	"github.com/oc-recover/oc-recover/pkg/redeploy"
)

var redeployLong = templates.LongDesc(`
	Force a new revision of a control-plane operand and wait until every
	control-plane node runs it.

	Sets spec.forceRedeploymentReason of the operator's CR to a unique
	recovery-<time>, then waits for NodeInstallerProgressing to turn False
	with AllNodesAtLatestRevision at a revision newer than before, showing
	the nodes' revisions as they move. 'control-plane' does etcd,
	kube-apiserver, kube-controller-manager and kube-scheduler in that order,
	as the restore procedure does. Re-running after an interruption waits for
	the rollout it started instead of starting another.`)

var redeployExample = templates.Examples(`
	# Redeploy etcd and wait for every node to run the new revision
	{{root}} redeploy etcd

	# Show the patches without applying them
	{{root}} redeploy control-plane --dry-run`)

// Options holds redeploy's arguments and client.
type Options struct {
	Targets []string

	globals *options.GlobalOptions
	streams genericiooptions.IOStreams
	getter  genericclioptions.RESTClientGetter
	client  operatorclient.Interface
	era     era.Clients
}

// NewCmdRedeploy returns the redeploy command.
func NewCmdRedeploy(f genericclioptions.RESTClientGetter, globals *options.GlobalOptions, streams genericiooptions.IOStreams) *cobra.Command {
	o := &Options{globals: globals, streams: streams}
	return &cobra.Command{
		Use:       "redeploy etcd|kube-apiserver|kube-controller-manager|kube-scheduler|control-plane",
		Short:     "Force a new revision of a control-plane operand and wait for it on every node",
		Long:      redeployLong,
		Example:   redeployExample,
		ValidArgs: append(append([]string{}, redeploy.ControlPlane...), "control-plane"),
		RunE:      options.RunE(f, o),
	}
}

// Complete turns the argument into the operands to redeploy, in order, and
// keeps the getter for Run.
func (o *Options) Complete(f genericclioptions.RESTClientGetter, args []string) error {
	o.getter = f
	if len(args) != 1 {
		return exitcode.Usagef("name one operand: etcd, kube-apiserver, kube-controller-manager, kube-scheduler or control-plane")
	}
	if args[0] == "control-plane" {
		o.Targets = redeploy.ControlPlane
		return nil
	}
	for _, name := range redeploy.ControlPlane {
		if args[0] == name {
			o.Targets = []string{name}
			return nil
		}
	}
	return exitcode.Usagef("unknown operand %q: choose etcd, kube-apiserver, kube-controller-manager, kube-scheduler or control-plane", args[0])
}

// Validate has nothing left to check: Complete accepts only known operands.
func (o *Options) Validate() error { return nil }

// connect builds the client.
func (o *Options) connect() error {
	set, err := clients.FromGetter(o.getter, 0, 0)
	if err != nil {
		return err
	}
	o.client = set.Operator
	o.era = set.Era()
	return nil
}

// Run redeploys each target in turn.
func (o *Options) Run(ctx context.Context) error {
	if err := o.connect(); err != nil {
		return err
	}
	ctx, cancel := o.globals.WithTimeout(ctx)
	defer cancel()
	out := o.streams.Out
	var ops []*redeploy.Operator
	for _, name := range o.Targets {
		op, err := redeploy.For(o.client, name)
		if err != nil {
			return exitcode.Usage(err)
		}
		ops = append(ops, op)
	}
	if err := era.Refuse(ctx, o.era); err != nil {
		return err
	}
	reason := redeploy.NewReason(time.Now())
	if o.globals.DryRun {
		fmt.Fprintln(out, "Plan (dry run, nothing changed):")
		for i, op := range ops {
			s, err := op.State(ctx)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "  %d. merge-patch %s: %s (now: %s, latest revision %d), then wait until every node is at a newer revision\n",
				i+1, op.Object, redeploy.Patch(reason), s.Summary(), s.Latest)
		}
		return nil
	}
	if err := prompt.Proceed(o.streams.In, out, o.globals.Yes, fmt.Sprintf("Redeploy %v on every control-plane node?", o.Targets), "nothing changed"); err != nil {
		return err
	}
	for _, op := range ops {
		fmt.Fprintf(out, "Redeploying %s (%s spec.forceRedeploymentReason=%s)\n", op.Name, op.Object, reason)
		before, after, err := op.Redeploy(ctx, reason, func(s redeploy.State) {
			fmt.Fprintf(out, "  %s: %s (latest revision %d)\n", op.Name, s.Summary(), s.Latest)
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "%s: every node at revision %d (was %s)\n", op.Name, after.Latest, before.Summary())
	}
	return nil
}
