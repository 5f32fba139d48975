package restore

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/oc-recover/oc-recover/pkg/cmd/internal/clients"
	"github.com/oc-recover/oc-recover/pkg/cmd/internal/options"
	"github.com/oc-recover/oc-recover/pkg/cmd/internal/output"
	"github.com/oc-recover/oc-recover/pkg/exitcode"
	"github.com/oc-recover/oc-recover/pkg/restore"
)

var statusLong = templates.LongDesc(`
	Show where the restores of this cluster stand, changing nothing: the
	restores recorded in the live API while the hosts carry them out (the
	ConfigMaps openshift-etcd/oc-recover-restore-<id>), the one whose last
	phase runs (annotation oc-recover/restore on etcd/cluster, with the
	steps done), and on every Ready control-plane host, through a debug pod,
	each restore directory under ` + restore.StateDir + `: the
	markers its runner wrote (with their times), its systemd unit's state
	and the end of its log.

	With BACKUP_DIR, the journal of a restore of that backup that has not
	ended is shown too; when the API does not answer (the hosts are
	restoring, or the quorum is lost) that journal is all it can show, and
	it says what to read on the hosts' consoles.`)

var statusExample = templates.Examples(`
	# Where the restores stand
	{{root}} restore status

	# With the journal of a restore of this backup, as JSON
	{{root}} restore status ./backup-mycluster-2026-12-01_0300 -o json`)

// StatusOptions holds `restore status`'s flags.
type StatusOptions struct {
	Dir             string
	Output          string
	PodStartTimeout time.Duration

	globals *options.GlobalOptions
	streams genericiooptions.IOStreams
	getter  genericclioptions.RESTClientGetter
}

// NewCmdStatus returns `restore status`.
func NewCmdStatus(f genericclioptions.RESTClientGetter, globals *options.GlobalOptions, streams genericiooptions.IOStreams) *cobra.Command {
	o := &StatusOptions{globals: globals, streams: streams, Output: output.Table, PodStartTimeout: 2 * time.Minute}
	cmd := &cobra.Command{
		Use:     "status [BACKUP_DIR]",
		Short:   "Show where the restores of this cluster stand, on the API and on every control-plane host",
		Long:    statusLong,
		Example: statusExample,
		RunE:    options.RunE(f, o),
	}
	cmd.Flags().StringVarP(&o.Output, "output", "o", o.Output, output.FlagUsage)
	cmd.Flags().DurationVar(&o.PodStartTimeout, "pod-start-timeout", o.PodStartTimeout, "How long to wait for each debug pod to start.")
	return cmd
}

// Complete takes the optional backup directory.
func (o *StatusOptions) Complete(f genericclioptions.RESTClientGetter, args []string) error {
	o.getter = f
	switch len(args) {
	case 0:
	case 1:
		o.Dir = args[0]
	default:
		return exitcode.Usagef("restore status takes at most one backup directory, got %d arguments", len(args))
	}
	return nil
}

// Validate checks the flags alone.
func (o *StatusOptions) Validate() error {
	if o.Dir == "" {
		if err := output.Validate(o.Output); err != nil {
			return err
		}
		if o.PodStartTimeout <= 0 {
			return exitcode.Usagef("--pod-start-timeout must be positive, got %s", o.PodStartTimeout)
		}
		return nil
	}
	return validate(o.Output, o.Dir, o.PodStartTimeout)
}

// Run reads and prints where the restores stand.
func (o *StatusOptions) Run(ctx context.Context) error {
	set, err := clients.FromGetter(o.getter, 0, 0)
	if err != nil {
		return err
	}
	ctx, cancel := o.globals.WithTimeout(ctx)
	defer cancel()
	var journal *restore.Journal
	if o.Dir != "" {
		if journal, err = restore.InFlight(o.Dir); err != nil {
			return err
		}
	}
	s := &restore.Standing{Journal: journal}
	if apiErr := apiAnswers(ctx, set); apiErr != nil {
		s.APIError = apiErr.Error()
	} else {
		engine := set.Engine(o.globals.Image, o.globals.Timeout+10*time.Minute, o.streams.ErrOut)
		engine.StartTimeout = o.PodStartTimeout
		c := restore.Clients{Kube: set.Kube, Config: set.OpenShiftConfig, Operator: set.Operator, Machine: set.Machine, REST: set.REST}
		read, err := restore.Stand(ctx, c, engine.Runner)
		if err != nil {
			return err
		}
		read.Journal = journal
		s = read
	}
	if output.Structured(o.Output) {
		return output.Print(o.streams.Out, o.Output, s)
	}
	printStanding(o.streams.Out, s)
	return nil
}

func printStanding(w io.Writer, s *restore.Standing) {
	if j := s.Journal; j != nil {
		fmt.Fprintf(w, "Journal: restore %s of %s, fired at %s onto %s, not ended.\n", j.Plan.ID, j.Plan.Backup.Dir, j.FiredAt.Format(time.RFC3339), j.Plan.Recovery.Name)
	}
	if s.APIError != "" {
		fmt.Fprintf(w, "The API does not answer (%s): nothing more can be read through it. On each control-plane host's console: ls %s/*/state; tail %s/*/run.log; journalctl -u 'oc-recover-restore-*'.\n", s.APIError, restore.StateDir, restore.StateDir)
		return
	}
	for _, f := range s.Fired {
		fmt.Fprintf(w, "Restore %s of %s, fired at %s onto %s: recorded in the live API (ConfigMap %s/%s%s), so the API still serves the data of before it.\n",
			f.ID, f.Backup, f.FiredAt, f.RecoveryNode, restore.SentinelNamespace, restore.SentinelPrefix, strings.ToLower(f.ID))
	}
	if r := s.Record; r != nil {
		var done []string
		for op, ok := range r.Done {
			if ok {
				done = append(done, op)
			}
		}
		fmt.Fprintf(w, "Restore %s of %s restored the cluster onto %s; its last phase is under way (done: %s).\n", r.ID, r.Backup, r.RecoveryNode, orNone(done))
	}
	if len(s.Fired) == 0 && s.Record == nil {
		fmt.Fprintln(w, "No restore is under way in the API.")
	}
	for _, h := range s.Hosts {
		switch {
		case h.Error != "":
			fmt.Fprintf(w, "%s: %s\n", h.Node, h.Error)
			continue
		case len(h.Restores) == 0:
			fmt.Fprintf(w, "%s: no restore directory\n", h.Node)
			continue
		}
		fmt.Fprintf(w, "%s:\n", h.Node)
		for _, r := range h.Restores {
			var marks []string
			for _, n := range r.MarkerNames() {
				marks = append(marks, n+" "+r.Markers[n])
			}
			unit := r.Unit
			if unit == "" {
				unit = "unknown"
			}
			fmt.Fprintf(w, "  %s: unit %s; markers: %s\n", r.Dir, unit, orNone(marks))
			for _, l := range r.Log {
				fmt.Fprintf(w, "    %s\n", l)
			}
		}
	}
}
