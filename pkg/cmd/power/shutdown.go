// Package power implements `oc recover shutdown` and `oc recover startup`
// (OpenShift 4.5 documentation, Backup and restore, chapter 3 "Shutting down
// the cluster gracefully" and chapter 4 "Restarting the cluster gracefully").
package power

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/oc-recover/oc-recover/pkg/backup"
	"github.com/oc-recover/oc-recover/pkg/cmd/internal/clients"
	"github.com/oc-recover/oc-recover/pkg/cmd/internal/options"
	"github.com/oc-recover/oc-recover/pkg/cmd/internal/output"
	"github.com/oc-recover/oc-recover/pkg/cmd/internal/progress"
	"github.com/oc-recover/oc-recover/pkg/cmd/internal/prompt"
	"github.com/oc-recover/oc-recover/pkg/debugnode"
	"github.com/oc-recover/oc-recover/pkg/era"
	"github.com/oc-recover/oc-recover/pkg/exitcode"
	"github.com/oc-recover/oc-recover/pkg/power"
	"github.com/oc-recover/oc-recover/pkg/runbook"
)

var shutdownLong = templates.LongDesc(`
	Shut the cluster down gracefully (OpenShift 4.5 documentation, Backup
	and restore, chapter 3 "Shutting down the cluster gracefully"): run "shutdown -h 1"
	on every node, through a debug pod on each, so that every host powers
	off a minute later and its pods terminate gracefully.

	Refused, with nothing done:

	* without a backup of this cluster newer than --max-backup-age in
	  --backup-dir (--backup takes one first; --force goes without, and
	  says so);
	* when the kube-apiserver-to-kubelet-signer certificate expires before
	  --restart-by, the time by which you plan to start the cluster again
	  (default: 30 days from now): a cluster that is down when this signer
	  expires cannot start again without recovering its certificates by
	  hand. The expiry is read from the certificate in the secret
	  openshift-kube-apiserver-operator/kube-apiserver-to-kubelet-signer
	  (its annotation auth.openshift.io/certificate-not-after when the
	  certificate cannot be read), and printed.

	All or nothing: a debug pod is started on every node first, and nothing
	is scheduled unless all of them run; a node whose debug pod cannot start
	(its kubelet is down, the image cannot be pulled) is reported and the
	command exits 1. The shutdowns are then scheduled on the workers, then
	on the control-plane nodes, so that the API stays up until the last one
	is scheduled. Should scheduling fail on a node, or the run be
	interrupted, the shutdowns already scheduled are cancelled with
	"shutdown -c" while their debug pods still run. The debug pods and their
	namespaces are removed before the minute is up.

	Start the machines again (outside this tool, e.g. from the cloud
	console) before --restart-by, then run "{{root}} startup".`)

var shutdownExample = templates.Examples(`
	# Show the pre-flight checks and the plan, changing nothing
	{{root}} shutdown --dry-run

	# Take a backup into /srv/etcd-backups first, then shut down without a prompt
	{{root}} shutdown --backup --backup-dir /srv/etcd-backups --yes

	# The cluster stays down for two months: refused if the kubelet signer expires before
	{{root}} shutdown --restart-by 60d --backup-dir /srv/etcd-backups`)

// ShutdownOptions holds `shutdown`'s flags and clients.
type ShutdownOptions struct {
	RestartBy       string
	TakeBackup      bool
	BackupDir       string
	MaxBackupAge    time.Duration
	Force           bool
	PodStartTimeout time.Duration
	Output          string

	restartBy time.Time
	now       time.Time
	globals   *options.GlobalOptions
	streams   genericiooptions.IOStreams
	getter    genericclioptions.RESTClientGetter
	set       *clients.Set
}

// NewCmdShutdown returns the shutdown command.
func NewCmdShutdown(f genericclioptions.RESTClientGetter, globals *options.GlobalOptions, streams genericiooptions.IOStreams) *cobra.Command {
	o := &ShutdownOptions{RestartBy: power.DefaultRestartBy, BackupDir: ".", MaxBackupAge: 24 * time.Hour,
		PodStartTimeout: 2 * time.Minute, Output: output.Table, globals: globals, streams: streams}
	cmd := &cobra.Command{
		Use:     "shutdown",
		Short:   "Shut every node of the cluster down gracefully, after a backup and a certificate check",
		Long:    shutdownLong,
		Example: shutdownExample,
		Args:    cobra.NoArgs,
		RunE:    options.RunE(f, o),
	}
	cmd.Flags().StringVar(&o.RestartBy, "restart-by", o.RestartBy, "When you will start the cluster again at the latest: an RFC 3339 time or a duration from now (30d, 36h). Refused if the kubelet signer expires before.")
	cmd.Flags().BoolVar(&o.TakeBackup, "backup", false, "Take a backup into --backup-dir first (when none is recent enough).")
	cmd.Flags().StringVar(&o.BackupDir, "backup-dir", o.BackupDir, "Directory holding this cluster's backups (as made by `backup --output-dir <backup-dir>/<name>`).")
	cmd.Flags().DurationVar(&o.MaxBackupAge, "max-backup-age", o.MaxBackupAge, "A backup older than this does not count.")
	cmd.Flags().BoolVar(&o.Force, "force", false, "Shut down without a recent backup; the report says so.")
	cmd.Flags().DurationVar(&o.PodStartTimeout, "pod-start-timeout", o.PodStartTimeout, "How long a debug pod may take to start on a node before the node counts as failed (and nothing is shut down).")
	cmd.Flags().StringVarP(&o.Output, "output", "o", o.Output, "Format of the final report: table, json or yaml (the plan and progress then go to stderr).")
	return cmd
}

// Complete parses --restart-by against the time now and keeps the getter
// for Run; shutdown takes no arguments.
func (o *ShutdownOptions) Complete(f genericclioptions.RESTClientGetter, _ []string) error {
	o.getter = f
	o.now = time.Now()
	t, err := power.ParseRestartBy(o.RestartBy, o.now)
	if err != nil {
		return exitcode.Usage(err)
	}
	o.restartBy = t
	return nil
}

// Validate checks the flags alone.
func (o *ShutdownOptions) Validate() error {
	if err := output.Validate(o.Output); err != nil {
		return err
	}
	if o.MaxBackupAge <= 0 {
		return exitcode.Usagef("--max-backup-age must be positive, got %s", o.MaxBackupAge)
	}
	if o.PodStartTimeout <= 0 {
		return exitcode.Usagef("--pod-start-timeout must be positive, got %s", o.PodStartTimeout)
	}
	return nil
}

// connect builds the clients.
func (o *ShutdownOptions) connect() error {
	set, err := clients.FromGetter(o.getter, 50, 100)
	if err != nil {
		return err
	}
	o.set = set
	return nil
}

func (o *ShutdownOptions) engine() *debugnode.Engine {
	e := o.set.Engine(o.globals.Image, 15*time.Minute, o.streams.ErrOut)
	e.StartTimeout = o.PodStartTimeout
	return e
}

// human is where the plan and progress go (output.HumanWriter).
func (o *ShutdownOptions) human() io.Writer { return output.HumanWriter(o.Output, o.streams) }

// Run checks, plans, confirms and shuts down.
func (o *ShutdownOptions) Run(ctx context.Context) error {
	if err := o.connect(); err != nil {
		return err
	}
	ctx, cancel := o.globals.WithTimeout(ctx)
	defer cancel()
	if err := era.Refuse(ctx, o.set.Era()); err != nil {
		return err
	}
	out := o.human()
	// Pre-flight: the nodes and the kubelet signer, then the backup.
	targets, r, err := power.Preflight(ctx, o.set.Kube, o.restartBy, o.now)
	if r != nil {
		expiry := r.Signer
		fmt.Fprintf(out, "Kubelet signer (%s/%s) expires %s (%s from now, from its %s).\n", power.SignerNamespace, power.SignerSecret,
			expiry.NotAfter.UTC().Format(time.RFC3339), power.HumanDuration(expiry.NotAfter.Sub(o.now)), expiry.Source)
		if expiry.Warning != "" {
			fmt.Fprintf(out, "WARNING: %s\n", expiry.Warning)
		}
		fmt.Fprintf(out, "Restart by: %s (--restart-by %s).\n", o.restartBy.UTC().Format(time.RFC3339), o.RestartBy)
	}
	if err != nil {
		return err
	}
	r.DryRun = o.globals.DryRun
	backupFirst, err := o.requireBackup(ctx, r)
	if err != nil {
		return err
	}

	o.printPlan(out, targets, backupFirst.Take)
	if o.globals.DryRun {
		for i := range r.Nodes {
			r.Nodes[i].Outcome = power.WouldSchedule
		}
		return o.printReport(r)
	}
	if err := prompt.Proceed(o.streams.In, out, o.globals.Yes, fmt.Sprintf("Shut down all %d nodes of this cluster?", len(targets)), "nothing was done"); err != nil {
		return err
	}
	if backupFirst.Take {
		bar := progress.New(o.streams.ErrOut, prompt.IsTerminal(o.streams.ErrOut))
		dir, err := o.backupGate().Take(ctx, o.now, bar, out)
		if err != nil {
			return fmt.Errorf("the backup taken before the shutdown failed, nothing was shut down: %w", err)
		}
		r.Backup = dir
	}

	s := &power.Shutdown{Start: o.engine().Runner, Log: out, Command: o.globals.CommandName}
	runErr := s.Run(ctx, targets, r)
	if err := o.printReport(r); err != nil {
		return err
	}
	if runErr != nil {
		return o.explain(runErr, r)
	}
	fmt.Fprintf(out, "Every node powers off within a minute (by about %s). Start the machines again before %s, then run `%s startup`.\n",
		r.PowerOffBy.Local().Format(time.TimeOnly), o.restartBy.UTC().Format(time.RFC3339), o.globals.CommandName)
	return nil
}

func (o *ShutdownOptions) explain(err error, r *power.ShutdownReport) error {
	var failed []string
	for _, n := range r.Nodes {
		switch n.Outcome {
		case power.StartFailed, power.Failed, power.CancelFailed:
			failed = append(failed, n.Node)
		}
	}
	switch {
	case errors.Is(err, power.ErrNothingScheduled):
		return fmt.Errorf("refusing: no debug pod could start on %s, so no shutdown was scheduled on any node; make every node able to run a debug pod (or shut it down by other means), then run this again", strings.Join(failed, ", "))
	case errors.Is(err, power.ErrRolledBack):
		return fmt.Errorf("scheduling the shutdown failed on %s; the shutdowns already scheduled were cancelled: no node powers off", strings.Join(failed, ", "))
	case errors.Is(err, power.ErrPartlyScheduled):
		return fmt.Errorf("scheduling failed and the shutdowns of %s could not be cancelled: THOSE HOSTS POWER OFF, the others stay up", strings.Join(failed, ", "))
	}
	return err
}

// printPlan shows what the shutdown will do, with takeBackup the backup it
// takes first.
func (o *ShutdownOptions) printPlan(out io.Writer, targets []power.Target, takeBackup bool) {
	var plan []runbook.Planned
	step := func(format string, args ...any) {
		plan = append(plan, runbook.Planned{Title: fmt.Sprintf(format, args...)})
	}
	if takeBackup {
		step("%s", backup.Requirement{Dir: o.BackupDir}.Step())
	}
	step("start a debug pod (namespace openshift-recover-*, privileged, host / at /host) on each of the %d nodes; nothing is scheduled unless every one runs", len(targets))
	var workers, masters, notReady []string
	for _, t := range targets {
		if t.Role == power.ControlPlane {
			masters = append(masters, t.Node)
		} else {
			workers = append(workers, t.Node)
		}
		if !t.Ready {
			notReady = append(notReady, t.Node)
		}
	}
	if len(workers) > 0 {
		step("on the %d worker node(s), run `chroot /host %s`: %s", len(workers), power.HostCommand, strings.Join(workers, ", "))
	}
	step("on the %d control-plane node(s), run `chroot /host %s`: %s", len(masters), power.HostCommand, strings.Join(masters, ", "))
	step("remove the debug pods and their namespaces, before the minute is up")
	runbook.Print(out, o.globals.DryRun, "", plan)
	fmt.Fprintf(out, "  If scheduling fails on a node, the shutdowns already scheduled are cancelled (`chroot /host %s`).\n", power.CancelCommand)
	if len(notReady) > 0 {
		fmt.Fprintf(out, "WARNING: not Ready: %s; a debug pod may not start there, and then nothing is shut down.\n", strings.Join(notReady, ", "))
	}
}

func (o *ShutdownOptions) printReport(r *power.ShutdownReport) error {
	if output.Structured(o.Output) {
		return output.Print(o.streams.Out, o.Output, r)
	}
	w := tabwriter.NewWriter(o.streams.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NODE\tROLE\tOUTCOME\tDETAIL")
	for _, n := range r.Nodes {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", n.Node, n.Role, n.Outcome, oneLine(n.Detail))
	}
	_ = w.Flush()
	for _, warning := range r.Warnings {
		fmt.Fprintf(o.streams.Out, "WARNING: %s\n", warning)
	}
	return nil
}

func oneLine(s string) string {
	if s == "" {
		return "-"
	}
	return strings.Join(strings.Fields(s), " ")
}

// backupGate is the runbook's rule of a recent backup first, on the flags
// --backup-dir, --max-backup-age, --backup and --force.
func (o *ShutdownOptions) backupGate() backup.Gate {
	return backup.Gate{
		Requirement: backup.Requirement{Dir: o.BackupDir, MaxAge: o.MaxBackupAge, Take: o.TakeBackup, Force: o.Force},
		Clients:     o.set.Backup(),
		Start:       o.engine().Runner,
		Command:     o.globals.CommandName,
	}
}

// requireBackup refuses without a recent backup of this cluster, unless
// --backup will take one or --force goes without, and records in the report
// the backup found or what --force went without.
func (o *ShutdownOptions) requireBackup(ctx context.Context, r *power.ShutdownReport) (backup.Decision, error) {
	d, err := o.backupGate().Check(ctx, o.now, "a shutdown")
	if err != nil {
		return d, err
	}
	d.Report(o.human(), o.now, "if the cluster does not come back there is nothing to restore")
	if d.Found != nil {
		r.Backup = d.Found.Dir
	}
	if d.Forced != "" {
		r.Forced = append(r.Forced, d.Forced)
	}
	return d, nil
}
