// Package restore implements `oc recover restore`: back to the state of
// an etcd backup.
package restore

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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
	"github.com/oc-recover/oc-recover/pkg/exitcode"
	"github.com/oc-recover/oc-recover/pkg/restore"
)

var restoreLong = templates.LongDesc(`
	Restore the cluster to the state of an etcd backup, as OpenShift's
	documentation does by hand in "Restoring to a previous cluster state"
	(Backup and restore, Control plane backup and restore, Disaster
	recovery), through the API and debug pods alone.

	It checks the restore, prints its plan and, once confirmed (--yes),
	carries it out: with --dry-run it prints the plan and changes nothing.
	Once the hosts' units are armed the restore goes on without the
	command; if it is interrupted after that, running it again waits for
	the restore and finishes it, and "restore abort" calls it back while the
	recovery host has not begun ("restore status" shows where it stands).
	A restore whose recovery host never began (a
	host kept its etcd) is undone on every host, and the cluster is as it
	was (exit 1).

	The checks, each a refusal that changes nothing:

	* the backup verifies as ` + "`backup verify`" + ` does (sha256, the snapshot's
	  trailer and bbolt structure, a test restore, the static resources
	  archive with the pod manifests of all four static pods and, with etcd
	  encryption on, its encryption configuration);
	* it is of this cluster, as the snapshot's own clusterversions/version
	  says (a directory that cluster-backup.sh wrote alone is judged too):
	  another cluster's backup is never restored;
	* it was taken on the release the cluster runs: another z-stream of the
	  same minor release only with --force, another minor release never;
	  a possibly dirty backup only with --force;
	* the cluster is not updating (--force), and its control plane is not
	  hosted elsewhere nor a two-node cluster with fencing;
	* the identity this command uses will be accepted by the restored
	  cluster: a client certificate that the backup's client CA bundle
	  trusts, or an OAuth token that the backup records (after a restore the
	  API knows only what the backup knew);
	* every control-plane node is Ready, or named --lost-node and not Ready;
	  the recovery node (--recovery-node, or the first Ready one) holds the
	  etcd operator's restore files and the disk space the restore needs, and
	  every host has systemd-run;
	* it is not run from inside the cluster (it would be stopped with it).

	When the API does not answer (etcd has lost quorum), nothing can be
	staged through it: the backup is verified locally and the procedure for
	the control-plane hosts' consoles is printed, rendered from the backup's
	own snapshot (the release, the control-plane nodes and their addresses;
	--recovery-node and --lost-node as above), moving data aside within /var
	and deleting nothing; it exits 1. With "restore prepare" run earlier,
	while the cluster was healthy, that procedure is one command per host.
	Once the restored API answers, the same command finds the restore on the
	recovery host and finishes it (phase C below) instead of planning
	another; a control-plane host that is not Ready, and so cannot be looked
	on, is refused unless named --lost-node. With --dry-run -o json|yaml a
	restore that would be carried on with instead of a new one is printed as
	a document ("what": resume, await or finish).

	A control-plane node named --lost-node has its Machine replaced in phase
	C, before etcd is redeployed, as "member replace" replaces one: a copy
	saved in the record, the Machine deleted, the copy created under the
	next free name, and its node waited for until Ready.

	The plan lists every step of the three phases: A while the API is up
	(the host runner and its plan on every control-plane host, the backup
	uploaded to the recovery host, a record ConfigMap in the live API, and a
	transient systemd unit armed on every host, the recovery host first); B
	without the API (each host's part of the release's procedure, legacy for
	OpenShift 4.4 to 4.17 and modern from 4.18, with the data moved aside
	within /var and nothing deleted); C once the restored API answers (the
	quorum guard lifted, etcd redeployed until every control-plane host has a
	member again, the guard put back as the backup had it, on 4.4 to 4.17 the
	kube-apiserver, kube-controller-manager and kube-scheduler redeployed,
	the wait for stable cluster operators, clean-up). What each host moved
	aside stays in its restore directory, and is named at the end.`)

var restoreExample = templates.Examples(`
	# Check a backup against the cluster and print the restore's plan
	{{root}} restore ./backup-mycluster-2026-12-01_0300 --dry-run

	# The same, as JSON
	{{root}} restore ./backup-mycluster-2026-12-01_0300 --dry-run -o json

	# Restore the cluster to the backup, on master-1
	{{root}} restore ./backup-mycluster-2026-12-01_0300 --recovery-node master-1

	# Restore onto master-1, master-2 being gone for good (and off)
	{{root}} restore ./backup-mycluster-2026-12-01_0300 --recovery-node master-1 --lost-node master-2 --dry-run`)

// Options holds `restore`'s flags and clients.
type Options struct {
	Dir          string
	RecoveryNode string
	LostNodes    []string
	Force        bool
	Output       string
	// PodStartTimeout bounds the wait for each debug pod to run.
	PodStartTimeout time.Duration
	// PeerStopTimeout is how long the recovery host waits for the peers.
	PeerStopTimeout time.Duration
	// APITimeout bounds the wait for the restored API.
	APITimeout time.Duration
	// StablePeriod is --minimum-stable-period.
	StablePeriod time.Duration

	globals *options.GlobalOptions
	streams genericiooptions.IOStreams
	getter  genericclioptions.RESTClientGetter
	set     *clients.Set
}

// NewCmdRestore returns the restore command.
func NewCmdRestore(f genericclioptions.RESTClientGetter, globals *options.GlobalOptions, streams genericiooptions.IOStreams) *cobra.Command {
	o := &Options{globals: globals, streams: streams, Output: output.Table, PodStartTimeout: 2 * time.Minute, APITimeout: 30 * time.Minute, PeerStopTimeout: restore.DefaultPeerStopTimeout, StablePeriod: 5 * time.Minute}
	cmd := &cobra.Command{
		Use:     "restore BACKUP_DIR",
		Short:   "Restore the cluster to an etcd backup, through the API and debug pods",
		Long:    restoreLong,
		Example: restoreExample,
		RunE:    options.RunE(f, o),
	}
	cmd.Flags().StringVar(&o.RecoveryNode, "recovery-node", "", "The control-plane node to restore on (default: the first Ready one).")
	cmd.Flags().StringSliceVar(&o.LostNodes, "lost-node", nil, "A control-plane node that is gone for good and off; nothing is staged there (repeatable).")
	cmd.Flags().BoolVar(&o.Force, "force", false, "Restore a backup of another z-stream of the same minor release, a possibly dirty one, or during an update; recorded in the plan.")
	cmd.Flags().StringVarP(&o.Output, "output", "o", o.Output, output.FlagUsage)
	cmd.Flags().DurationVar(&o.PodStartTimeout, "pod-start-timeout", o.PodStartTimeout, "How long to wait for each debug pod to start.")
	cmd.Flags().DurationVar(&o.PeerStopTimeout, "peer-stop-timeout", o.PeerStopTimeout, "How long the recovery host waits for etcd to stop on every other control-plane host before it gives up, changing nothing; the other hosts then put everything back.")
	cmd.Flags().DurationVar(&o.APITimeout, "api-timeout", o.APITimeout, "How long to wait for the restored API once the hosts' units are armed.")
	cmd.Flags().DurationVar(&o.StablePeriod, "minimum-stable-period", o.StablePeriod, "How long every cluster operator must stay Available, not Progressing and not Degraded at the end.")
	cmd.AddCommand(NewCmdPrepare(f, globals, streams), NewCmdStatus(f, globals, streams), NewCmdAbort(f, globals, streams))
	return cmd
}

// Complete takes the backup directory from the argument.
func (o *Options) Complete(f genericclioptions.RESTClientGetter, args []string) error {
	o.getter = f
	if len(args) != 1 || args[0] == "" {
		return exitcode.Usagef("name the backup directory to restore, e.g. `restore ./backup-mycluster-2026-12-01_0300` (see `backup list`)")
	}
	o.Dir = args[0]
	return nil
}

// Validate checks the flags alone.
func (o *Options) Validate() error {
	if o.APITimeout <= 0 {
		return exitcode.Usagef("--api-timeout must be positive, got %s", o.APITimeout)
	}
	if o.PeerStopTimeout < 10*time.Second {
		return exitcode.Usagef("--peer-stop-timeout must be at least 10s, got %s", o.PeerStopTimeout)
	}
	if o.StablePeriod < 0 {
		return exitcode.Usagef("--minimum-stable-period must not be negative, got %s", o.StablePeriod)
	}
	return validate(o.Output, o.Dir, o.PodStartTimeout)
}

// validate checks the flags restore and restore prepare share.
func validate(format, dir string, podStartTimeout time.Duration) error {
	if err := output.Validate(format); err != nil {
		return err
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return exitcode.Usagef("%s is not a backup directory (as `backup` writes it, or cluster-backup.sh)", dir)
	}
	if podStartTimeout <= 0 {
		return exitcode.Usagef("--pod-start-timeout must be positive, got %s", podStartTimeout)
	}
	return nil
}

// apiProbeTimeout bounds the first look at the API: without an etcd
// quorum every request hangs until the apiserver's own timeout.
const apiProbeTimeout = 15 * time.Second

// Run checks and plans the restore.
func (o *Options) Run(ctx context.Context) error {
	set, err := clients.FromGetter(o.getter, 0, 0)
	if err != nil {
		return err
	}
	o.set = set
	ctx, cancel := o.globals.WithTimeout(ctx)
	defer cancel()
	bar := progress.New(o.streams.ErrOut, prompt.IsTerminal(o.streams.ErrOut))
	ev := restore.Events{Say: bar.Step, Upload: bar.Upload}
	journal, err := restore.InFlight(o.Dir)
	if err != nil {
		return err
	}
	if err := o.apiAnswers(ctx); err != nil {
		if journal == nil {
			return o.fromTheConsoles(err)
		}
		// Not a lost quorum: the restore an earlier run fired.
		bar.Step("restore %s of this backup, fired at %s, is under way on the hosts and the API does not answer (%v): waiting for it (--api-timeout)", journal.Plan.ID, journal.FiredAt.Format(time.RFC3339), err)
		if o.globals.DryRun {
			return o.pending(restore.PendingJournal(journal))
		}
		if err := o.waitForAPI(ctx, journal); err != nil {
			return err
		}
	}
	engine := set.Engine(o.globals.Image, o.globals.Timeout+10*time.Minute, o.streams.ErrOut)
	engine.StartTimeout = o.PodStartTimeout
	c := restore.Clients{Kube: set.Kube, Config: set.OpenShiftConfig, Operator: set.Operator, Machine: set.Machine, REST: set.REST}
	rec, err := restore.ReadRecord(ctx, c)
	if err != nil && !apierrors.IsForbidden(err) {
		return err // forbidden: pre-flight refuses a user who is no cluster-admin, saying so
	}
	if rec != nil {
		// The restored cluster answers and phase C has begun: go on with it.
		if o.globals.DryRun {
			return o.pending(restore.PendingRecord("resume", rec), fmt.Sprintf("Restore %s of %s restored the cluster onto %s; its last phase would be resumed.", rec.ID, rec.Backup, rec.RecoveryNode))
		}
		bar.Step("resuming restore %s: the cluster runs on %s's restored etcd", rec.ID, rec.RecoveryNode)
		return o.recover(ctx, c, rec, journal, engine.Runner, ev)
	}
	if journal != nil {
		if o.globals.DryRun {
			return o.pending(restore.PendingJournal(journal), fmt.Sprintf("Restore %s of %s, fired at %s, is under way; it would be waited for and finished.", journal.Plan.ID, o.Dir, journal.FiredAt.Format(time.RFC3339)))
		}
		bar.Step("resuming restore %s, fired at %s", journal.Plan.ID, journal.FiredAt.Format(time.RFC3339))
		if err := restore.Await(ctx, c, engine.Runner, journal, o.APITimeout, ev); err != nil {
			return err
		}
		return o.restored(ctx, c, journal, engine.Runner, ev)
	}
	_, inCluster := os.LookupEnv("KUBERNETES_SERVICE_HOST")
	now := time.Now()
	ropts := restore.Options{Dir: o.Dir, RecoveryNode: o.RecoveryNode, LostNodes: o.LostNodes, Force: o.Force, InCluster: inCluster,
		Command: o.globals.CommandName, Now: now, StartRunner: engine.Runner, PeerStopTimeout: o.PeerStopTimeout}
	if byHand, err := restore.RestoredByHand(ctx, c, ropts); err != nil || byHand != nil {
		if err != nil {
			return err
		}
		return o.finishByHand(ctx, c, byHand, engine.Runner, bar, ev)
	}
	plan, err := restore.Preflight(ctx, c, ropts)
	if err != nil {
		return err
	}
	if output.Structured(o.Output) && o.globals.DryRun {
		return output.Print(o.streams.Out, o.Output, plan)
	}
	printPlan(o.streams.Out, plan)
	if o.globals.DryRun {
		return nil
	}
	question := fmt.Sprintf("Restore the cluster to %s on %s? Everything changed since the backup is lost", plan.Backup.Dir, plan.Recovery.Name)
	if err := prompt.Proceed(o.streams.In, o.streams.ErrOut, o.globals.Yes, question, "nothing was changed"); err != nil {
		return err
	}
	journal, err = restore.Fire(ctx, c, ropts, plan, o.APITimeout, ev)
	if err != nil {
		return err
	}
	return o.restored(ctx, c, journal, engine.Runner, ev)
}

// finishByHand runs the last phase of a restore done from the hosts'
// consoles, once confirmed: with lost nodes, it replaces their Machines.
func (o *Options) finishByHand(ctx context.Context, c restore.Clients, rec *restore.Record, start debugnode.StartFunc, bar *progress.Lines, ev restore.Events) error {
	if o.RecoveryNode != "" && o.RecoveryNode != rec.RecoveryNode {
		return exitcode.Usagef("--recovery-node %s: the cluster was restored on %s's console (%s), which the rest of the restore keeps", o.RecoveryNode, rec.RecoveryNode, rec.Dir)
	}
	if err := o.pending(restore.PendingRecord("finish", rec),
		fmt.Sprintf("The cluster runs on the restore done on %s's console at %s (%s, restore %s).", rec.RecoveryNode, rec.FiredAt.Format(time.RFC3339), rec.Dir, rec.ID),
		"Its last phase: "+strings.Join(restore.FinishSteps(rec), "; ")); err != nil || o.globals.DryRun {
		return err
	}
	question := fmt.Sprintf("Finish the restore done on %s", rec.RecoveryNode)
	if len(rec.Lost) > 0 {
		question += fmt.Sprintf(", deleting the Machines of %s", strings.Join(rec.Lost, ", "))
	}
	if err := prompt.Proceed(o.streams.In, o.streams.ErrOut, o.globals.Yes, question+"?", "nothing was changed"); err != nil {
		return err
	}
	if err := restore.WriteRecord(ctx, c, rec); err != nil {
		return err
	}
	bar.Step("finishing restore %s, done on %s's console", rec.ID, rec.RecoveryNode)
	return o.recover(ctx, c, rec, nil, start, ev)
}

// pending says what restore is carried on with instead of a new one: the
// lines for a person, on stdout, or with -o json|yaml p on stdout under
// --dry-run and the lines on stderr otherwise (stdout then holds the
// result alone).
func (o *Options) pending(p restore.Pending, lines ...string) error {
	out := o.streams.Out
	if output.Structured(o.Output) {
		if o.globals.DryRun {
			return output.Print(out, o.Output, p)
		}
		out = o.streams.ErrOut
	}
	for _, l := range lines {
		fmt.Fprintln(out, l)
	}
	return nil
}

// restored records phase C in the restored cluster and runs it.
func (o *Options) restored(ctx context.Context, c restore.Clients, j *restore.Journal, start debugnode.StartFunc, ev restore.Events) error {
	rec := restore.NewRecord(j.Plan, j.FiredAt)
	if err := restore.WriteRecord(ctx, c, rec); err != nil {
		return fmt.Errorf("the cluster is restored, but its record could not be written (%w): run this command again to finish", err)
	}
	return o.recover(ctx, c, rec, j, start, ev)
}

// waitForAPI waits until the API answers, for --api-timeout.
func (o *Options) waitForAPI(ctx context.Context, j *restore.Journal) error {
	wctx, cancel := context.WithTimeout(ctx, o.APITimeout)
	defer cancel()
	for {
		if err := o.apiAnswers(wctx); err == nil {
			return nil
		}
		select {
		case <-wctx.Done():
			return fmt.Errorf("the API did not answer within %s (--api-timeout): restore %s runs on the hosts without it; run this command again to keep waiting, and read %s/%s/run.log and `journalctl -u oc-recover-restore-%s` on %s's console", o.APITimeout, j.Plan.ID, restore.StateDir, j.Plan.ID, j.Plan.ID, j.Plan.Recovery.Name)
		case <-time.After(3 * time.Second):
		}
	}
}

// recover runs phase C, ends the journal and prints what the restore
// left.
func (o *Options) recover(ctx context.Context, c restore.Clients, rec *restore.Record, j *restore.Journal, start debugnode.StartFunc, ev restore.Events) error {
	done, err := restore.Recover(ctx, c, rec, restore.RecoverOptions{StartRunner: start, StablePeriod: o.StablePeriod}, ev)
	if err != nil {
		return fmt.Errorf("restore %s: the cluster runs on the restored data, but %w", rec.ID, err)
	}
	if j != nil {
		if err := restore.EndJournal(j, "restored"); err != nil {
			ev.Say("warning: %v", err)
		}
	}
	if output.Structured(o.Output) {
		return output.Print(o.streams.Out, o.Output, done)
	}
	fmt.Fprintf(o.streams.Out, "Restored the cluster to %s (restore %s): etcd has a member on %s.\n", rec.Backup, rec.ID, strings.Join(rec.Members(), ", "))
	fmt.Fprintln(o.streams.Out, "Kept, with everything each host moved aside:")
	for _, n := range rec.ControlPlane {
		fmt.Fprintf(o.streams.Out, "  %s: %s\n", n, done.Kept[n])
	}
	for _, lost := range rec.Lost {
		fmt.Fprintf(o.streams.Out, "Lost node %s was replaced by node %s.\n", lost, done.Replaced[lost])
	}
	for _, a := range done.Advice {
		fmt.Fprintf(o.streams.Out, "Note: %s\n", a)
	}
	return nil
}

// apiAnswers refuses at once when the API does not answer: nothing can be
// staged on the hosts without it.
func (o *Options) apiAnswers(ctx context.Context) error { return apiAnswers(ctx, o.set) }

// apiAnswers asks the API's /readyz, for apiProbeTimeout at most.
func apiAnswers(ctx context.Context, set *clients.Set) error {
	pctx, cancel := context.WithTimeout(ctx, apiProbeTimeout)
	defer cancel()
	err := set.Kube.Discovery().RESTClient().Get().AbsPath("/readyz").Do(pctx).Error()
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// fromTheConsoles is the answer when the API does not: the backup is
// verified here, and the procedure for the hosts' consoles printed,
// rendered for this cluster from the backup's own snapshot.
func (o *Options) fromTheConsoles(apiErr error) error {
	refusal := fmt.Sprintf("refusing to restore, nothing was changed: the API does not answer (%v). A restore stages the backup and arms the hosts through the API; with etcd's quorum lost it is done from the control-plane hosts' consoles", apiErr)
	v, err := backup.Verify(o.Dir)
	if err != nil {
		return fmt.Errorf("%s, and backup %s is not usable for that either: %w", refusal, o.Dir, err)
	}
	if err := restore.ConsoleProcedure(o.streams.Out, v, restore.ConsoleOptions{Recovery: o.RecoveryNode, Lost: o.LostNodes, Command: o.globals.CommandName}); err != nil {
		return fmt.Errorf("%s (%v): follow \"Restoring to a previous cluster state\" (OpenShift documentation, Backup and restore)", refusal, err)
	}
	return fmt.Errorf("%s: the commands above do it for this cluster", refusal)
}

// printPlan prints the plan for a person.
func printPlan(w io.Writer, p *restore.Plan) {
	fmt.Fprintf(w, "Restore plan %s: profile %s (OpenShift %s), cluster %s\n", p.ID, p.Profile, p.Release, p.ClusterID)
	b := p.Backup
	fmt.Fprintf(w, "  backup %s: %s + %s, revision %d, taken %s\n", b.Dir, b.Snapshot, b.Resources, b.Revision, b.TakenAt.Format(time.RFC3339))
	fmt.Fprintf(w, "    cluster %s, OpenShift %s (%s)\n", b.ClusterID, b.Version, b.IdentityFrom)
	fmt.Fprintf(w, "  identity after the restore: %s\n", p.Identity)
	var peers []string
	for _, h := range p.Peers {
		peers = append(peers, h.Name+" "+h.IP)
	}
	fmt.Fprintf(w, "  recovery node: %s %s; other control-plane hosts: %s; lost: %s\n", p.Recovery.Name, p.Recovery.IP, orNone(peers), orNone(p.LostNodes))
	for _, f := range p.Forced {
		fmt.Fprintf(w, "  FORCED: %s\n", f)
	}
	for _, warn := range p.Warnings {
		fmt.Fprintf(w, "  WARNING: %s\n", warn)
	}
	phase := ""
	for _, s := range p.Steps {
		if s.Phase != phase {
			phase = s.Phase
			fmt.Fprintf(w, "%s:\n", restore.PhaseTitles[phase])
		}
		where := "API"
		if s.Node != "" {
			where = s.Node
		}
		fmt.Fprintf(w, "  %s: %s\n", where, s.Action)
		if s.Command != "" {
			fmt.Fprintf(w, "      %s\n", s.Command)
		}
	}
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}
