package backup

import (
	"context"
	"fmt"
	"io"
	"time"

	configclient "github.com/openshift/client-go/config/clientset/versioned"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/oc-recover/oc-recover/pkg/debugnode"
	"github.com/oc-recover/oc-recover/pkg/exitcode"
)

// Requirement is the rule of the commands that put a cluster at risk
// (member replace, shutdown): a backup of this cluster, recent enough, on
// the admin's disk first (--backup-dir, --max-backup-age), unless the
// command takes one now (--backup) or the admin goes without (--force).
type Requirement struct {
	Dir    string
	MaxAge time.Duration
	Take   bool
	Force  bool
}

// Decision is how a Requirement is met.
type Decision struct {
	ClusterID string
	// Found is the recent backup, when there is one.
	Found *Entry
	// Take: none was found and --backup asks for one.
	Take bool
	// Forced says what --force overrode, for the command's record.
	Forced string
}

// Check looks for the backup. Without one, and without --backup or
// --force, it refuses, naming the directory, the age and the ways out;
// action says what the backup is required before ("replacing a member").
func (r Requirement) Check(ctx context.Context, config configclient.Interface, now time.Time, action, commandName string) (Decision, error) {
	cv, err := config.ConfigV1().ClusterVersions().Get(ctx, "version", metav1.GetOptions{})
	if err != nil {
		return Decision{}, fmt.Errorf("read clusterversion/version (the cluster's ID, to find its backups): %w", err)
	}
	d := Decision{ClusterID: string(cv.Spec.ClusterID)}
	d.Found, err = Recent(r.Dir, d.ClusterID, r.MaxAge, now)
	if err != nil && !r.Take && !r.Force {
		return d, exitcode.Usagef("cannot read --backup-dir %s: %v", r.Dir, err)
	}
	switch {
	case d.Found != nil:
	case r.Take:
		d.Take = true
	case r.Force:
		d.Forced = fmt.Sprintf("no backup of cluster %s newer than %s in %s", d.ClusterID, r.MaxAge, r.Dir)
	default:
		return d, fmt.Errorf("refusing, nothing was done: no backup of cluster %s newer than %s in %s (OpenShift 4.5 documentation, Backup and restore, requires one before %s); take one with `%s backup --output-dir %s/<name>`, or pass --backup to take it now, or --force to go without",
			d.ClusterID, r.MaxAge, r.Dir, action, commandName, r.Dir)
	}
	return d, nil
}

// TakeInto takes a backup from the first healthy control-plane node into a
// new directory under parent, named as `backup` names it. A failed backup
// leaves no directory behind.
func TakeInto(ctx context.Context, c Clients, start debugnode.StartFunc, parent, command string, now time.Time, p Progress) (*Result, error) {
	cl, err := Preflight(ctx, c, PreflightOptions{Now: now, Command: command,
		ForceAdvice: fmt.Sprintf("or take one anyway with `%s backup --force --output-dir %s/<name>` (marked __POSSIBLY_DIRTY__), then run this command again without --backup", command, parent)})
	if err != nil {
		return nil, err
	}
	return Run(ctx, start, cl, Request{Parent: parent, Options: Options{Now: now}}, p)
}

// Gate is a Requirement as member replace and shutdown meet it: checked
// before the plan is shown, and, when no recent backup was found and
// --backup asks for one, the backup taken after the confirmation and
// before anything else changes.
type Gate struct {
	Requirement
	Clients Clients
	Start   debugnode.StartFunc
	// Command is the plugin as the user typed it, for advice.
	Command string
}

// Check looks for the backup (Requirement.Check); action says what it is
// required before ("replacing a member").
func (g Gate) Check(ctx context.Context, now time.Time, action string) (Decision, error) {
	return g.Requirement.Check(ctx, g.Clients.OpenShiftConfig, now, action, g.Command)
}

// Report writes how the requirement is met: the backup found, or what
// --force went without and risk, what that means for this command. A
// backup still to take is the plan's to show (Step).
func (d Decision) Report(out io.Writer, now time.Time, risk string) {
	switch {
	case d.Found != nil:
		fmt.Fprintf(out, "Backup: %s (taken %s ago).\n", d.Found.Dir, now.Sub(d.Found.Created()).Round(time.Minute))
	case d.Forced != "":
		fmt.Fprintf(out, "WARNING: --force: %s; %s.\n", d.Forced, risk)
	}
}

// Step is the plan's line for the backup a decision to Take takes.
func (r Requirement) Step() string {
	return fmt.Sprintf("take a backup into %s (from a healthy control-plane node)", r.Dir)
}

// Take takes the backup into a new directory under the gate's Dir
// (TakeInto), says so on out and returns the directory.
func (g Gate) Take(ctx context.Context, now time.Time, p Progress, out io.Writer) (string, error) {
	res, err := TakeInto(ctx, g.Clients, g.Start, g.Dir, g.Command, now, p)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(out, "Backup: %s (revision %d, %d live keys, test restore OK).\n", res.Dir, res.Manifest.Etcd.Revision, res.Manifest.Etcd.LiveKeys)
	return res.Dir, nil
}
