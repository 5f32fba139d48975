package options

import (
	"context"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
)

// Command is the one lifecycle of every oc-recover command: kubectl's
// Complete → Validate → Run (k8s.io/kubectl/pkg/cmd/*, and
// k8s.io/sample-cli-plugin), with one difference in what Complete does.
//
// kubectl's Complete builds the clients. Ours only remembers the getter and
// turns the arguments into values (node names, normalised IDs, parsed times),
// and Run builds the clients first thing. That way a usage error is reported
// as one (exit code 2) before any kubeconfig is read: at 3 a.m. on a broken
// control plane the kubeconfig may be the very thing that is missing, and
// "name the node" is the more useful message. oc's newer Options → Runtime
// split (oc adm copy-to-node) would give the same order with a second type per
// command; one struct with three methods is the smaller thing to learn.
type Command interface {
	// Complete fills in what the arguments and flags imply and keeps f for
	// Run. It reads no kubeconfig and talks to no cluster; a bad argument is
	// an exitcode.Usage error.
	Complete(f genericclioptions.RESTClientGetter, args []string) error
	// Validate checks the completed options. It changes nothing.
	Validate() error
	// Run builds the clients and does the work.
	Run(ctx context.Context) error
}

// RunE wires o into cobra.
func RunE(f genericclioptions.RESTClientGetter, o Command) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if err := o.Complete(f, args); err != nil {
			return err
		}
		if err := o.Validate(); err != nil {
			return err
		}
		return o.Run(cmd.Context())
	}
}
