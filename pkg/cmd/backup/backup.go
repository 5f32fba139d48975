// Package backup implements `oc recover backup` and its `verify` and `list`
// subcommands.
package backup

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/oc-recover/oc-recover/pkg/backup"
	"github.com/oc-recover/oc-recover/pkg/cmd/internal/clients"
	"github.com/oc-recover/oc-recover/pkg/cmd/internal/options"
	"github.com/oc-recover/oc-recover/pkg/cmd/internal/progress"
	"github.com/oc-recover/oc-recover/pkg/cmd/internal/prompt"
	"github.com/oc-recover/oc-recover/pkg/debugnode"
	"github.com/oc-recover/oc-recover/pkg/era"
	"github.com/oc-recover/oc-recover/pkg/exitcode"
	"github.com/oc-recover/oc-recover/pkg/restore"
)

var backupLong = templates.LongDesc(`
	Take an etcd backup and bring it to this machine, verified.

	On one healthy control-plane node (Ready, etcd pod and member healthy, and
	from 4.6 its own kube-apiserver ready, which the script asks), through a
	temporary debug pod, runs the etcd operator's
	/usr/local/bin/cluster-backup.sh into a directory of this run's own, with
	the cluster-wide proxy exported. Downloads snapshot_<ts>.db and
	static_kuberesources_<ts>.tar.gz into --output-dir, checks them against
	the host's sha256, then proves them here: the snapshot's sha256 trailer,
	bbolt consistency, its revision and key count, a test restore into a
	throw-away etcd data directory, and the archive's kube-apiserver,
	kube-controller-manager, kube-scheduler and etcd pod manifests. Writes
	backup.json, and removes the copy on the node unless --keep-on-node.

	Refused within 24 hours of installation (the first certificate rotation
	makes such a backup unrestorable), and while kube-apiserver,
	kube-controller-manager, kube-scheduler or etcd is rolling out (the
	snapshot could be paired with resources of another revision), unless
	--force: then the script is given --force too where it takes it (4.6
	and later), the files are named __POSSIBLY_DIRTY__, and backup.json
	records it. Backups on one node run their host scripts one at a time.
	A host script that prints nothing for --silence-timeout is stopped and
	reported with the command it was waiting on. A failed run leaves no
	file that looks complete, and no debug pod or namespace.

	With --prepare-restore the verified backup is then prepared for a
	restore from the consoles, as "restore prepare" does (see its help):
	the day etcd loses its quorum, the restore of "Restoring to a previous
	cluster state" is one command on each surviving control-plane host. A
	backup that the restore would refuse is kept but not prepared (exit 1).`)

var backupExample = templates.Examples(`
	# Back up into ./backup-<cluster>-<timestamp>/
	{{root}} backup

	# Back up from a chosen control-plane node into a directory of backups, keeping the 7 newest
	{{root}} backup --node master-1 --output-dir /srv/etcd-backups/$(date +%F) --keep 7

	# Back up, and pre-position the backup on every control-plane host for a restore from the consoles
	{{root}} backup --output-dir /srv/etcd-backups/$(date +%F) --prepare-restore

	# Check an existing backup, and list the backups in a directory
	{{root}} backup verify /srv/etcd-backups/2026-11-20
	{{root}} backup list /srv/etcd-backups`)

// Options holds the backup command's flags and clients.
type Options struct {
	OutputDir  string
	Node       string
	Force      bool
	KeepOnNode bool
	Keep       int
	Silence    time.Duration
	// PrepareRestore: once verified, the backup is prepared for a restore
	// from the consoles, as `restore prepare` does.
	PrepareRestore bool

	globals *options.GlobalOptions
	streams genericiooptions.IOStreams
	getter  genericclioptions.RESTClientGetter
	set     *clients.Set
}

// NewCmdBackup returns the backup command with its subcommands.
func NewCmdBackup(f genericclioptions.RESTClientGetter, globals *options.GlobalOptions, streams genericiooptions.IOStreams) *cobra.Command {
	o := &Options{globals: globals, streams: streams}
	cmd := &cobra.Command{
		Use:     "backup",
		Short:   "Take a verified etcd backup onto this machine",
		Long:    backupLong,
		Example: backupExample,
		Args:    cobra.NoArgs,
		RunE:    options.RunE(f, o),
	}
	cmd.Flags().StringVar(&o.OutputDir, "output-dir", "", "Directory for the backup; must be new or empty (default ./backup-<cluster>-<timestamp>).")
	cmd.Flags().StringVar(&o.Node, "node", "", "Control-plane node to take the backup on (default: the first healthy one).")
	cmd.Flags().BoolVar(&o.Force, "force", false, "Take the backup even within 24 hours of installation or during a rollout (then marked __POSSIBLY_DIRTY__); recorded in backup.json.")
	cmd.Flags().DurationVar(&o.Silence, "silence-timeout", backup.DefaultSilenceTimeout, "Stop the host's backup script when it prints nothing for this long, and report what it was waiting on.")
	cmd.Flags().BoolVar(&o.KeepOnNode, "keep-on-node", false, "Leave the backup's copy on the node in /home/core/assets/backup.")
	cmd.Flags().IntVar(&o.Keep, "keep", 0, "After a successful backup, keep only the N newest backups of this cluster in the output directory's parent.")
	cmd.Flags().BoolVar(&o.PrepareRestore, "prepare-restore", false, "Once verified, prepare the backup on every control-plane host for a restore from the consoles, as `restore prepare` does, replacing the one prepared before.")
	cmd.AddCommand(newCmdVerify(streams), newCmdList(streams))
	return cmd
}

// Complete keeps the getter for Run; backup takes no arguments.
func (o *Options) Complete(f genericclioptions.RESTClientGetter, _ []string) error {
	o.getter = f
	return nil
}

// Validate checks the flags alone.
func (o *Options) Validate() error {
	if o.Keep < 0 {
		return exitcode.Usagef("--keep must be a positive number of backups, got %d", o.Keep)
	}
	if o.Silence < time.Second {
		return exitcode.Usagef("--silence-timeout must be at least 1s, got %s", o.Silence)
	}
	return nil
}

// connect builds the clients.
func (o *Options) connect() error {
	set, err := clients.FromGetter(o.getter, 0, 0)
	if err != nil {
		return err
	}
	o.set = set
	return nil
}

// Run takes the backup.
func (o *Options) Run(ctx context.Context) error {
	if err := o.connect(); err != nil {
		return err
	}
	ctx, cancel := o.globals.WithTimeout(ctx)
	defer cancel()
	now := time.Now()
	out := o.streams.Out
	p := progress.New(o.streams.ErrOut, prompt.IsTerminal(o.streams.ErrOut))

	if err := era.Refuse(ctx, o.set.Era()); err != nil {
		return err
	}
	cl, err := backup.Preflight(ctx, o.set.Backup(), backup.PreflightOptions{Node: o.Node, Force: o.Force, Now: now, Command: o.globals.CommandName})
	if err != nil {
		return err
	}
	for _, f := range cl.Forced {
		fmt.Fprintf(out, "WARNING: --force: %s\n", f)
	}
	req := backup.Request{Dir: o.OutputDir, Keep: o.Keep,
		Options: backup.Options{KeepOnNode: o.KeepOnNode, Now: now, SilenceTimeout: o.Silence}}
	dir := req.OutputDir(cl)
	if o.globals.DryRun {
		fmt.Fprintf(out, "Plan (dry run, nothing changed):\n")
		fmt.Fprintf(out, "  1. create a debug namespace openshift-recover-* and a privileged debug pod on %s (image %s)\n", cl.Node, o.engine(nil).ResolveImage(ctx))
		force := ""
		if cl.Dirty {
			force = "--force (where the script takes it) "
		}
		fmt.Fprintf(out, "  2. on the host, one backup script at a time: /usr/local/bin/cluster-backup.sh %s/home/core/assets/backup/oc-recover-<ts>-<random>%s\n", force, proxyNote(cl.ProxyEnv))
		fmt.Fprintf(out, "  3. download snapshot_<ts>.db and static_kuberesources_<ts>.tar.gz to %s, verify sha256 against the host\n", dir)
		fmt.Fprintf(out, "  4. verify locally: sha256 trailer, bbolt consistency, test restore; write backup.json\n")
		if !o.KeepOnNode {
			fmt.Fprintf(out, "  5. remove the host copy; remove the debug pod and namespace\n")
		}
		if o.PrepareRestore {
			fmt.Fprintf(out, "  6. prepare it for a restore from the consoles, as `%s restore prepare %s` does: the restore's checks, then the backup, run.sh and plan.env in %s on every control-plane host\n", o.globals.CommandName, dir, restore.PreparedDir)
		}
		return nil
	}
	res, err := backup.Run(ctx, o.engine(o.streams.ErrOut).Runner, cl, req, p)
	if res == nil {
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted (%v); the debug pod and namespace were removed and no partial file was kept: %w", context.Cause(ctx), err)
		}
		return err
	}
	m := res.Manifest
	fmt.Fprintf(out, "Backup of cluster %s (OpenShift %s) from %s is in %s:\n", m.ClusterID, m.Version, m.Node, dir)
	for _, f := range m.Files {
		fmt.Fprintf(out, "  %-48s %10s  sha256 %s\n", f.Name, progress.HumanBytes(f.Size), f.SHA256)
	}
	fmt.Fprintf(out, "  %s\n", backup.ManifestName)
	tested := "skipped"
	if m.Etcd.RestoreTested {
		tested = "OK"
	}
	fmt.Fprintf(out, "Verified: sha256 trailer, bbolt consistency, revision %d, %d live keys, test restore %s, static pod manifests present.\n", m.Etcd.Revision, m.Etcd.LiveKeys, tested)
	if m.Dirty {
		fmt.Fprintf(out, "WARNING: possibly dirty: taken during a rollout with --force (%s); a restore refuses it without --force. Take a clean backup once the rollout is done.\n", backup.DirtyMark)
	}
	if m.EncryptionType != "" {
		fmt.Fprintf(out, "etcd encryption is on (%s): %s holds the encryption keys. Store it apart from the snapshot, e.g. on another system, but keep both: a restore needs the two.\n",
			m.EncryptionType, m.File(backup.KindStaticResources).Name)
	}
	for _, r := range res.Pruned {
		fmt.Fprintf(out, "Pruned older backup %s (--keep %d)\n", r, o.Keep)
	}
	if err != nil || !o.PrepareRestore {
		return err
	}
	return o.prepareRestore(ctx, dir, p)
}

// prepareRestore prepares the new backup for a restore from the consoles.
// The backup stands whatever happens here.
func (o *Options) prepareRestore(ctx context.Context, dir string, p *progress.Lines) error {
	_, inCluster := os.LookupEnv("KUBERNETES_SERVICE_HOST")
	c := restore.Clients{Kube: o.set.Kube, Config: o.set.OpenShiftConfig, Operator: o.set.Operator, REST: o.set.REST}
	ro := restore.Options{Dir: dir, Force: o.Force, InCluster: inCluster, Command: o.globals.CommandName, Now: time.Now(), StartRunner: o.engine(o.streams.ErrOut).Runner}
	prepared, err := restore.Prepare(ctx, c, ro, p.Upload)
	if err != nil {
		return fmt.Errorf("the backup in %s is complete and verified, but it was not prepared for a restore (--prepare-restore): %w. Run `%s restore prepare %s` once that is put right", dir, err, o.globals.CommandName, dir)
	}
	for _, l := range prepared.Instructions(o.globals.CommandName) {
		fmt.Fprintln(o.streams.Out, l)
	}
	return nil
}

func (o *Options) engine(log io.Writer) *debugnode.Engine {
	return o.set.Engine(o.globals.Image, o.globals.Timeout+10*time.Minute, log)
}

func proxyNote(env map[string]string) string {
	if len(env) == 0 {
		return ""
	}
	var keys []string
	for k := range env {
		keys = append(keys, k)
	}
	return " (with " + strings.Join(keys, ", ") + " from proxy/cluster)"
}
