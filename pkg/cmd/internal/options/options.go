// Package options holds the settings every oc-recover command shares (SPEC
// "Global flags") and the one command lifecycle (Command, RunE). It is under
// pkg/cmd/internal so that command packages (pkg/cmd/<verb>) can use it
// without importing the root command package, and the compiler keeps it out
// of the domain packages.
package options

import (
	"context"
	"time"

	"github.com/spf13/pflag"

	"github.com/oc-recover/oc-recover/pkg/exitcode"
)

// DefaultTimeout bounds a whole command run. Recovery steps wait for revision
// rollouts and machine provisioning, which take tens of minutes.
const DefaultTimeout = 30 * time.Minute

// GlobalOptions are the values of the persistent flags added by AddFlags. The
// kubeconfig-related flags are not here: they belong to the cmdutil.Factory.
type GlobalOptions struct {
	// Yes answers the confirmation prompt of mutating commands with "yes".
	Yes bool
	// DryRun makes mutating commands print their plan and change nothing.
	DryRun bool
	// Timeout bounds the whole command; zero means no limit.
	Timeout time.Duration
	// Image overrides the container image of debug-node pods; empty means
	// "resolve it from the cluster".
	Image string

	// CommandName is how the user invoked the plugin ("oc recover" or
	// "kubectl recover"), for messages that tell the user what to run next.
	CommandName string
}

// NewGlobalOptions returns GlobalOptions holding the flag defaults.
func NewGlobalOptions(commandName string) *GlobalOptions {
	return &GlobalOptions{
		Timeout:     DefaultTimeout,
		CommandName: commandName,
	}
}

// AddFlags registers the global flags on flags, normally the root command's
// persistent flag set.
func (o *GlobalOptions) AddFlags(flags *pflag.FlagSet) {
	flags.BoolVar(&o.Yes, "yes", o.Yes, "Do not ask for confirmation before changing the cluster.")
	flags.BoolVar(&o.DryRun, "dry-run", o.DryRun, "Print the plan (objects, patches, host commands) and change nothing.")
	flags.DurationVar(&o.Timeout, "timeout", o.Timeout, "Give up after this long. Zero means no limit.")
	flags.StringVar(&o.Image, "image", o.Image, "Container image for debug-node pods. Defaults to the cluster's 'tools' image stream.")
}

// Validate rejects flag values no command can work with.
func (o *GlobalOptions) Validate() error {
	if o.Timeout < 0 {
		return exitcode.Usagef("--timeout must not be negative, got %s", o.Timeout)
	}
	return nil
}

// WithTimeout returns ctx bounded by --timeout. Commands call it once at the
// start of Run and defer the cancel function.
func (o *GlobalOptions) WithTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if o.Timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, o.Timeout)
}
