package member

import (
	"context"
	"errors"
	"fmt"
	"strings"
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
	"github.com/oc-recover/oc-recover/pkg/member"
	"github.com/oc-recover/oc-recover/pkg/runbook"
)

var replaceLong = templates.LongDesc(`
	Replace the unhealthy etcd member of a control-plane node, by the
	procedure its diagnosis calls for (OpenShift 4.5 documentation, Backup and restore,
	2.4 "Replacing the unhealthy etcd member"):

	* machine not running, or node not ready: remove the member, delete its
	  three secrets, and with the Machine API replace the Machine (saved,
	  stripped of what belonged to the old instance, renamed to the next free
	  index, old one deleted, new one created, waited to Running); on hosts
	  the Machine API does not manage, stop and say what to build, then
	  continue when run again;
	* etcd pod crashlooping: on the node, move etcd-pod.yaml to
	  /var/lib/etcd-backup/ and /var/lib/etcd to /tmp, remove the member,
	  delete its secrets;

	then force an etcd redeployment when a control-plane node has no etcd
	pod, and verify one healthy member per control-plane node. With fewer
	than three healthy members left, the etcd operator's quorum guard is
	lifted for the duration and always put back.

	Refused, with nothing changed, when etcd has lost quorum (restore
	instead), when the member is healthy, when removing it would lose quorum,
	when another member is unhealthy too, when the member no longer matches
	the node, when the node's Machine cannot be found, and without a backup of
	this cluster newer than --max-backup-age in --backup-dir (--backup takes
	one first; --force goes without, and says so).

	Every step first checks whether the cluster already shows its effect:
	after an interruption, run the same command again and it continues. The
	replacement in progress is recorded on etcd/cluster (annotation
	oc-recover/member-replace) until it ends.`)

var replaceExample = templates.Examples(`
	# Show the plan for replacing the member of master-0, changing nothing
	{{root}} member replace master-0 --dry-run

	# Take a backup first, then replace, without a confirmation prompt
	{{root}} member replace master-0 --backup --backup-dir /srv/etcd-backups --yes

	# Replace only if the member is still the one you looked at
	{{root}} member replace master-0 --member-id 6fc1e7c9db35841d`)

// ReplaceOptions holds `member replace`'s flags and clients.
type ReplaceOptions struct {
	Node         string
	MemberID     string
	TakeBackup   bool
	BackupDir    string
	MaxBackupAge time.Duration
	Force        bool

	globals *options.GlobalOptions
	streams genericiooptions.IOStreams
	getter  genericclioptions.RESTClientGetter
	// memberID is --member-id as etcd prints it: lower case, no 0x.
	memberID string
	set      *clients.Set
}

func newCmdReplace(f genericclioptions.RESTClientGetter, globals *options.GlobalOptions, streams genericiooptions.IOStreams) *cobra.Command {
	o := &ReplaceOptions{globals: globals, streams: streams}
	cmd := &cobra.Command{
		Use:     "replace NODE",
		Short:   "Replace the unhealthy etcd member of a control-plane node",
		Long:    replaceLong,
		Example: replaceExample,
		RunE:    options.RunE(f, o),
	}
	cmd.Flags().StringVar(&o.MemberID, "member-id", "", "The member ID (hex) you expect the node's member to have; refuse if it differs.")
	cmd.Flags().BoolVar(&o.TakeBackup, "backup", false, "Take a backup into --backup-dir first (when none is recent enough).")
	cmd.Flags().StringVar(&o.BackupDir, "backup-dir", ".", "Directory holding this cluster's backups (as made by `backup --output-dir <backup-dir>/<name>`).")
	cmd.Flags().DurationVar(&o.MaxBackupAge, "max-backup-age", 24*time.Hour, "A backup older than this does not count.")
	cmd.Flags().BoolVar(&o.Force, "force", false, "Go on without a recent backup; recorded on the replacement.")
	return cmd
}

// Complete takes the node from the argument, normalises --member-id (as
// `member status` prints it, with or without 0x) and keeps the getter for Run.
func (o *ReplaceOptions) Complete(f genericclioptions.RESTClientGetter, args []string) error {
	o.getter = f
	if len(args) != 1 || args[0] == "" {
		return exitcode.Usagef("name the control-plane node whose member to replace, e.g. `member replace master-0` (see `member status`)")
	}
	o.Node = args[0]
	o.memberID = strings.TrimPrefix(strings.ToLower(o.MemberID), "0x")
	return nil
}

// Validate checks the flags alone.
func (o *ReplaceOptions) Validate() error {
	if o.MaxBackupAge <= 0 {
		return exitcode.Usagef("--max-backup-age must be positive, got %s", o.MaxBackupAge)
	}
	if strings.Trim(o.memberID, "0123456789abcdef") != "" {
		return exitcode.Usagef("--member-id %q is not a hexadecimal etcd member ID (as `member status` shows it)", o.MemberID)
	}
	return nil
}

// connect builds the clients.
func (o *ReplaceOptions) connect() error {
	set, err := clients.FromGetter(o.getter, 0, 0)
	if err != nil {
		return err
	}
	o.set = set
	return nil
}

func (o *ReplaceOptions) engine() *debugnode.Engine {
	return o.set.Engine(o.globals.Image, o.globals.Timeout+10*time.Minute, o.streams.ErrOut)
}

// Run plans, confirms and carries out the replacement.
func (o *ReplaceOptions) Run(ctx context.Context) error {
	if err := o.connect(); err != nil {
		return err
	}
	ctx, cancel := o.globals.WithTimeout(ctx)
	defer cancel()
	if err := era.Refuse(ctx, o.set.Era()); err != nil {
		return err
	}
	out := o.streams.Out
	now := time.Now()
	rc := member.ReplaceClients{
		Clients:     member.Clients{Kube: o.set.Kube, Machine: o.set.Machine, Operator: o.set.Operator, REST: o.set.REST},
		StartRunner: o.engine().Runner,
	}
	p, err := member.PlanReplace(ctx, rc, member.ReplaceOptions{Node: o.Node, MemberID: o.memberID, Now: now, Command: o.globals.CommandName})
	if err != nil {
		return err
	}
	rec := p.Record
	// backupFirst is how the rule of a recent backup first is met; a
	// replacement being resumed met it when it began.
	var backupFirst backup.Decision
	if p.Resuming {
		fmt.Fprintf(out, "Resuming the replacement of etcd member %s of %s (%s procedure), started %s.\n", rec.MemberID, rec.Node, rec.Procedure, rec.Started.Local().Format(time.RFC3339))
	} else {
		d := p.Decision
		fmt.Fprintf(out, "Member %s of %s: %s (machine %s, node Ready=%s, etcd pod %s).\n", d.Member.MemberID, rec.Node, d.Member.Diagnosis,
			output.OrDash(d.Member.InstanceState), d.Member.NodeReady, d.Member.PodState)
		fmt.Fprintf(out, "Procedure: %s. %d healthy of %d members remain after the removal", procedureName(rec.Procedure), d.HealthyAfter, d.VotingAfter)
		if rec.Override {
			fmt.Fprintf(out, "; fewer than 3, so the etcd quorum guard is lifted for the duration")
		}
		fmt.Fprintln(out, ".")
		if backupFirst, err = o.requireBackup(ctx, rec, now); err != nil {
			return err
		}
	}
	steps, err := p.Steps(ctx)
	if err != nil {
		return err
	}
	take := backupFirst.Take && rec.Backup == ""
	before := ""
	if take {
		before = o.backupGate().Step()
	}
	runbook.Print(out, o.globals.DryRun, before, steps)
	if o.globals.DryRun {
		return nil
	}
	if err := prompt.Proceed(o.streams.In, out, o.globals.Yes, fmt.Sprintf("Replace the etcd member of %s?", rec.Node), "nothing changed"); err != nil {
		return err
	}
	if take {
		bar := progress.New(o.streams.ErrOut, prompt.IsTerminal(o.streams.ErrOut))
		dir, err := o.backupGate().Take(ctx, now, bar, out)
		if err != nil {
			return fmt.Errorf("the backup taken before the replacement failed, nothing else was changed: %w", err)
		}
		rec.Backup = dir
	}
	err = p.Run(ctx, out)
	if err != nil {
		if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("interrupted (%v); the quorum guard was put back; run `%s member replace %s` again to continue: %w", context.Cause(ctx), o.globals.CommandName, rec.Node, err)
		}
		return err
	}
	fmt.Fprintf(out, "The etcd member of %s was replaced; every control-plane node has a healthy member.\n", rec.Node)
	return nil
}

// backupGate is the runbook's rule of a recent backup first, on the flags
// --backup-dir, --max-backup-age, --backup and --force.
func (o *ReplaceOptions) backupGate() backup.Gate {
	return backup.Gate{
		Requirement: backup.Requirement{Dir: o.BackupDir, MaxAge: o.MaxBackupAge, Take: o.TakeBackup, Force: o.Force},
		Clients:     o.set.Backup(),
		Start:       o.engine().Runner,
		Command:     o.globals.CommandName,
	}
}

// requireBackup refuses without a recent backup of this cluster, unless
// --backup will take one or --force goes without, and records on the
// replacement the backup found or what --force went without.
func (o *ReplaceOptions) requireBackup(ctx context.Context, rec *member.Record, now time.Time) (backup.Decision, error) {
	d, err := o.backupGate().Check(ctx, now, "replacing a member")
	if err != nil {
		return d, err
	}
	d.Report(o.streams.Out, now, "if this goes wrong there is nothing to restore")
	if d.Found != nil {
		rec.Backup = d.Found.Dir
	}
	if d.Forced != "" {
		rec.Forced = append(rec.Forced, d.Forced)
	}
	return d, nil
}

func procedureName(p string) string {
	switch p {
	case member.ProcedureMachine:
		return "replace the machine (OpenShift 4.5 documentation, Backup and restore, 2.4.1 \"Replacing an unhealthy etcd member whose machine is not running or whose node is not ready\", Machine API)"
	case member.ProcedureUPI:
		return "replace the host by hand (OpenShift 4.5 documentation, Backup and restore, 2.4.1 \"Replacing an unhealthy etcd member whose machine is not running or whose node is not ready\", hosts not managed by the Machine API)"
	case member.ProcedureCrashloop:
		return "fresh data on the same node (OpenShift 4.5 documentation, Backup and restore, 2.4.2 \"Replacing an unhealthy etcd member whose etcd pod is crashlooping\")"
	}
	return p
}
