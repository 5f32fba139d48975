package restore

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/oc-recover/oc-recover/pkg/cmd/internal/clients"
	"github.com/oc-recover/oc-recover/pkg/cmd/internal/options"
	"github.com/oc-recover/oc-recover/pkg/cmd/internal/output"
	"github.com/oc-recover/oc-recover/pkg/cmd/internal/progress"
	"github.com/oc-recover/oc-recover/pkg/cmd/internal/prompt"
	"github.com/oc-recover/oc-recover/pkg/exitcode"
	"github.com/oc-recover/oc-recover/pkg/restore"
)

var abortLong = templates.LongDesc(`
	Call back a restore of BACKUP_DIR whose hosts' units are armed, while
	its recovery host has not begun restoring: for instance one whose
	"restore" was interrupted while another control-plane host's etcd would
	not stop.

	The recovery host's part is aborted first, under the same lock as its
	decision to restore, so that it either never begins or the abort
	refuses ("too late", exit 1, nothing changed; "restore BACKUP_DIR" then
	waits for the restore and finishes it). Then every other host puts back
	what it moved (etcd's data, the static pod manifests) and its unit is
	stopped. The restore's journal in BACKUP_DIR is ended and its record in
	the live API removed: the cluster is as it was.

	It needs the API (while the hosts restore it does not answer, and a
	restore that far cannot be called back) and the restore's journal,
	which "restore" wrote into BACKUP_DIR. On a host's console the same is
	"bash ` + restore.StateDir + `/<id>/run.sh abort", the recovery host
	first.`)

var abortExample = templates.Examples(`
	# Call back the restore of this backup that is armed but has not begun
	{{root}} restore abort ./backup-mycluster-2026-12-01_0300`)

// AbortOptions holds `restore abort`'s flags.
type AbortOptions struct {
	Dir             string
	PodStartTimeout time.Duration

	globals *options.GlobalOptions
	streams genericiooptions.IOStreams
	getter  genericclioptions.RESTClientGetter
}

// NewCmdAbort returns `restore abort`.
func NewCmdAbort(f genericclioptions.RESTClientGetter, globals *options.GlobalOptions, streams genericiooptions.IOStreams) *cobra.Command {
	o := &AbortOptions{globals: globals, streams: streams, PodStartTimeout: 2 * time.Minute}
	cmd := &cobra.Command{
		Use:     "abort BACKUP_DIR",
		Short:   "Call back an armed restore of a backup before its recovery host begins",
		Long:    abortLong,
		Example: abortExample,
		RunE:    options.RunE(f, o),
	}
	cmd.Flags().DurationVar(&o.PodStartTimeout, "pod-start-timeout", o.PodStartTimeout, "How long to wait for each debug pod to start.")
	return cmd
}

// Complete takes the backup directory from the argument.
func (o *AbortOptions) Complete(f genericclioptions.RESTClientGetter, args []string) error {
	o.getter = f
	if len(args) != 1 || args[0] == "" {
		return exitcode.Usagef("name the backup directory whose restore to call back, e.g. `restore abort ./backup-mycluster-2026-12-01_0300`: its journal is there")
	}
	o.Dir = args[0]
	return nil
}

// Validate checks the flags alone.
func (o *AbortOptions) Validate() error { return validate(output.Table, o.Dir, o.PodStartTimeout) }

// Run calls the restore back.
func (o *AbortOptions) Run(ctx context.Context) error {
	journal, err := restore.InFlight(o.Dir)
	if err != nil {
		return err
	}
	if journal == nil {
		fmt.Fprintf(o.streams.Out, "No restore of %s is under way (no unended journal restore-<id>.json there): nothing to call back.\n", o.Dir)
		return nil
	}
	set, err := clients.FromGetter(o.getter, 0, 0)
	if err != nil {
		return err
	}
	ctx, cancel := o.globals.WithTimeout(ctx)
	defer cancel()
	if apiErr := apiAnswers(ctx, set); apiErr != nil {
		return fmt.Errorf("refusing to abort, nothing was changed: the API does not answer (%v): restore %s is past the point where it can be called back (the hosts restore without the API), or the quorum is lost. `%s restore %s` waits for it and finishes it", apiErr, journal.Plan.ID, o.globals.CommandName, o.Dir)
	}
	if o.globals.DryRun {
		fmt.Fprintf(o.streams.Out, "Would call back restore %s (fired at %s onto %s): run.sh abort on %s first, then on every other control-plane host (dry run: nothing was changed).\n",
			journal.Plan.ID, journal.FiredAt.Format(time.RFC3339), journal.Plan.Recovery.Name, journal.Plan.Recovery.Name)
		return nil
	}
	engine := set.Engine(o.globals.Image, o.globals.Timeout+10*time.Minute, o.streams.ErrOut)
	engine.StartTimeout = o.PodStartTimeout
	bar := progress.New(o.streams.ErrOut, prompt.IsTerminal(o.streams.ErrOut))
	c := restore.Clients{Kube: set.Kube, Config: set.OpenShiftConfig, Operator: set.Operator, Machine: set.Machine, REST: set.REST}
	if err := restore.Abort(ctx, c, engine.Runner, journal, o.globals.CommandName, restore.Events{Say: bar.Step}); err != nil {
		return err
	}
	fmt.Fprintf(o.streams.Out, "Called back restore %s of %s: every control-plane host is as it was, and the cluster keeps its data and members.\n", journal.Plan.ID, o.Dir)
	return nil
}
