package options

import (
	"context"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
)

// Command is the Options of a command that takes no arguments and talks to
// the cluster, in kubectl's style.
type Command interface {
	// Validate checks the flags.
	Validate() error
	// Complete builds the clients from the kubeconfig flags.
	Complete(genericclioptions.RESTClientGetter) error
	// Run does the work.
	Run(context.Context) error
}

// RunE wires o into cobra: the flags are validated first, so that a usage
// error is reported without loading a kubeconfig; then the clients are
// built and the command run.
func RunE(f genericclioptions.RESTClientGetter, o Command) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		if err := o.Validate(); err != nil {
			return err
		}
		if err := o.Complete(f); err != nil {
			return err
		}
		return o.Run(cmd.Context())
	}
}
