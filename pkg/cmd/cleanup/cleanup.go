// Package cleanup implements `oc recover cleanup`: remove debug namespaces
// and pods that an interrupted or killed oc-recover left behind.
package cleanup

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/oc-recover/oc-recover/pkg/cmd/internal/clients"
	"github.com/oc-recover/oc-recover/pkg/cmd/internal/options"
	"github.com/oc-recover/oc-recover/pkg/cmd/internal/prompt"
	"github.com/oc-recover/oc-recover/pkg/debugnode"
)

var cleanupLong = templates.LongDesc(`
	Remove the temporary debug namespaces and pods that oc-recover creates to
	work on nodes.

	Every command removes its own on success, failure and Ctrl-C; this finds
	what a killed process or a lost connection left behind: namespaces labelled
	app.kubernetes.io/managed-by=oc-recover. Nothing else is touched.`)

var cleanupExample = templates.Examples(`
	# Show what would be removed
	{{root}} cleanup --dry-run

	# Remove it without asking
	{{root}} cleanup --yes`)

// Options holds what cleanup needs.
type Options struct {
	globals *options.GlobalOptions
	streams genericiooptions.IOStreams
	getter  genericclioptions.RESTClientGetter
	client  kubernetes.Interface
}

// NewCmdCleanup returns the cleanup command.
func NewCmdCleanup(f genericclioptions.RESTClientGetter, globals *options.GlobalOptions, streams genericiooptions.IOStreams) *cobra.Command {
	o := &Options{globals: globals, streams: streams}
	return &cobra.Command{
		Use:     "cleanup",
		Short:   "Remove debug namespaces and pods left behind by oc-recover",
		Long:    cleanupLong,
		Example: cleanupExample,
		Args:    cobra.NoArgs,
		RunE:    options.RunE(f, o),
	}
}

// Complete keeps the getter for Run; cleanup takes no arguments.
func (o *Options) Complete(f genericclioptions.RESTClientGetter, _ []string) error {
	o.getter = f
	return nil
}

// Validate has nothing to check: cleanup has no flags of its own.
func (o *Options) Validate() error { return nil }

// connect builds the client.
func (o *Options) connect() error {
	set, err := clients.FromGetter(o.getter, 0, 0)
	if err != nil {
		return err
	}
	o.client = set.Kube
	return nil
}

// Run lists the leftovers and removes them.
//
// Unlike the other commands, cleanup does not call era.RequireSupported: it
// only lists and deletes namespaces labelled
// app.kubernetes.io/managed-by=oc-recover, which every Kubernetes release
// serves alike, and on a release the others refuse (OpenShift 3.x, 4.0-4.3)
// those can only be what an older oc-recover left there, which is exactly
// what the user then needs removed.
func (o *Options) Run(ctx context.Context) error {
	if err := o.connect(); err != nil {
		return err
	}
	ctx, cancel := o.globals.WithTimeout(ctx)
	defer cancel()
	leftovers, err := debugnode.Leftovers(ctx, o.client)
	if err != nil {
		return fmt.Errorf("list oc-recover namespaces: %w", err)
	}
	if len(leftovers) == 0 {
		fmt.Fprintln(o.streams.Out, "Nothing to clean up: no namespace labelled app.kubernetes.io/managed-by=oc-recover.")
		return nil
	}
	for _, ns := range leftovers {
		age := time.Since(ns.CreationTimestamp.Time).Round(time.Second)
		fmt.Fprintf(o.streams.Out, "namespace/%s (node %s, created %s ago)\n", ns.Name, ns.Labels[debugnode.NodeLabel], age)
	}
	if o.globals.DryRun {
		fmt.Fprintf(o.streams.Out, "Dry run: would remove %d namespace(s) and their pods.\n", len(leftovers))
		return nil
	}
	if err := prompt.Proceed(o.streams.In, o.streams.Out, o.globals.Yes, fmt.Sprintf("Remove these %d namespace(s) and their pods?", len(leftovers)), "nothing removed"); err != nil {
		return err
	}
	for _, ns := range leftovers {
		if err := debugnode.DeleteNamespace(ctx, o.client, ns.Name); err != nil {
			return err
		}
		fmt.Fprintf(o.streams.Out, "namespace/%s removed\n", ns.Name)
	}
	return nil
}
