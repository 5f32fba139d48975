package restore

import (
	"context"
	"fmt"
	"io"
	"os"
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

var prepareLong = templates.LongDesc(`
	Pre-position a verified backup and the restore's host runner on every
	control-plane host, while the cluster is healthy, so that the day etcd
	loses its quorum (the API does not answer, nothing can be staged
	through it) the restore of "Restoring to a previous cluster state"
	(OpenShift documentation, Backup and restore, Control plane backup and
	restore, Disaster recovery) is one command on each surviving host's
	console.

	It runs the restore's checks first (see restore --help): a backup that
	the restore would refuse is not prepared. Each host gets
	` + restore.PreparedDir + ` holding the backup's two files
	(uploaded with sha256 checked on both ends), run.sh and that host's
	plan.env, which records the etcd cluster the host serves now. A newer
	prepare replaces it once the new copy is complete; a directory that a
	restore used is kept, renamed.

	On the day, as root on each host that is up, peers first:
	  bash ` + restore.PreparedDir + `/run.sh peer RECOVERY-NODE
	then on the host that restores:
	  bash ` + restore.PreparedDir + `/run.sh recovery
	A peer stops its etcd and kube-apiserver, moves etcd's data aside
	within /var, waits for the recovery host to serve the restored cluster
	(and puts everything back if it still serves the old one after 45
	minutes), then restarts its kubelet. The recovery host restores only
	once etcd answers on no peer. Each step is recorded under state/, and a
	second run never repeats one. Once the API answers, "restore BACKUP_DIR"
	(with --lost-node for each host that is gone) finds the restore on the
	recovery host and finishes it: the nodes' CSRs approved, the lost
	hosts' Machines replaced, etcd redeployed until every control-plane
	node has a member, and the rest of the documented procedure.`)

var prepareExample = templates.Examples(`
	# Pre-position the newest backup on every control-plane host
	{{root}} restore prepare ./backup-mycluster-2026-12-01_0300`)

// PrepareOptions holds `restore prepare`'s flags.
type PrepareOptions struct {
	Dir             string
	Force           bool
	Output          string
	PodStartTimeout time.Duration

	globals *options.GlobalOptions
	streams genericiooptions.IOStreams
	getter  genericclioptions.RESTClientGetter
}

// NewCmdPrepare returns `restore prepare`.
func NewCmdPrepare(f genericclioptions.RESTClientGetter, globals *options.GlobalOptions, streams genericiooptions.IOStreams) *cobra.Command {
	o := &PrepareOptions{globals: globals, streams: streams, Output: output.Table, PodStartTimeout: 2 * time.Minute}
	cmd := &cobra.Command{
		Use:     "prepare BACKUP_DIR",
		Short:   "Pre-position a backup and the host runner on every control-plane host, for a restore from the consoles",
		Long:    prepareLong,
		Example: prepareExample,
		RunE:    options.RunE(f, o),
	}
	cmd.Flags().BoolVar(&o.Force, "force", false, "Prepare a backup that restore accepts only with --force (another z-stream, possibly dirty, during an update).")
	cmd.Flags().StringVarP(&o.Output, "output", "o", o.Output, output.FlagUsage)
	cmd.Flags().DurationVar(&o.PodStartTimeout, "pod-start-timeout", o.PodStartTimeout, "How long to wait for each debug pod to start.")
	return cmd
}

// Complete takes the backup directory from the argument.
func (o *PrepareOptions) Complete(f genericclioptions.RESTClientGetter, args []string) error {
	o.getter = f
	if len(args) != 1 || args[0] == "" {
		return exitcode.Usagef("name the backup directory to prepare, e.g. `restore prepare ./backup-mycluster-2026-12-01_0300` (see `backup list`)")
	}
	o.Dir = args[0]
	return nil
}

// Validate checks the flags alone.
func (o *PrepareOptions) Validate() error { return validate(o.Output, o.Dir, o.PodStartTimeout) }

// Run prepares every control-plane host.
func (o *PrepareOptions) Run(ctx context.Context) error {
	set, err := clients.FromGetter(o.getter, 0, 0)
	if err != nil {
		return err
	}
	ctx, cancel := o.globals.WithTimeout(ctx)
	defer cancel()
	engine := set.Engine(o.globals.Image, o.globals.Timeout+10*time.Minute, o.streams.ErrOut)
	engine.StartTimeout = o.PodStartTimeout
	_, inCluster := os.LookupEnv("KUBERNETES_SERVICE_HOST")
	ro := restore.Options{Dir: o.Dir, Force: o.Force, InCluster: inCluster, Command: o.globals.CommandName, Now: time.Now(), StartRunner: engine.Runner}
	if o.globals.DryRun {
		plan, err := restore.Preflight(ctx, restore.Clients{Kube: set.Kube, Config: set.OpenShiftConfig, Operator: set.Operator, REST: set.REST}, ro)
		if err != nil {
			return err
		}
		fmt.Fprintf(o.streams.Out, "Would prepare %s on %s (dry run: nothing was changed).\n", restore.PreparedDir, hostNames(append([]restore.Host{plan.Recovery}, plan.Peers...)))
		return nil
	}
	bar := progress.New(o.streams.ErrOut, prompt.IsTerminal(o.streams.ErrOut))
	p, err := restore.Prepare(ctx, restore.Clients{Kube: set.Kube, Config: set.OpenShiftConfig, Operator: set.Operator, REST: set.REST}, ro, bar.Upload)
	if err != nil {
		return err
	}
	if output.Structured(o.Output) {
		return output.Print(o.streams.Out, o.Output, struct {
			*restore.Prepared
			Commands []restore.HostCommand `json:"commands"`
		}{p, p.Commands(p.Hosts[0].Name)})
	}
	printPrepared(o.streams.Out, p, o.globals.CommandName)
	return nil
}

func printPrepared(w io.Writer, p *restore.Prepared, command string) {
	for _, l := range p.Instructions(command) {
		fmt.Fprintln(w, l)
	}
}

func hostNames(hosts []restore.Host) string {
	var names []string
	for _, h := range hosts {
		names = append(names, h.Name)
	}
	return orNone(names)
}
