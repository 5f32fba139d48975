// Package health implements `oc recover health`: one verdict on whether
// the cluster is healthy and ready for a recovery.
package health

import (
	"context"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/oc-recover/oc-recover/pkg/cmd/internal/clients"
	"github.com/oc-recover/oc-recover/pkg/cmd/internal/options"
	"github.com/oc-recover/oc-recover/pkg/cmd/internal/output"
	"github.com/oc-recover/oc-recover/pkg/debugnode"
	"github.com/oc-recover/oc-recover/pkg/era"
	"github.com/oc-recover/oc-recover/pkg/exitcode"
	"github.com/oc-recover/oc-recover/pkg/health"
	"github.com/oc-recover/oc-recover/pkg/power"
)

// Options holds `health`'s flags and clients.
type Options struct {
	Output       string
	Only, Skip   []string
	BackupDir    string
	MaxBackupAge time.Duration
	RestartBy    string
	Deep         bool
	// PodStartTimeout bounds the wait for each --deep debug pod to run.
	PodStartTimeout time.Duration

	globals *options.GlobalOptions
	streams genericiooptions.IOStreams
	getter  genericclioptions.RESTClientGetter
	clients health.Clients
	era     era.Clients
	set     *clients.Set
	now     time.Time
	until   time.Time
}

// NewCmdHealth returns the health command.
func NewCmdHealth(f genericclioptions.RESTClientGetter, globals *options.GlobalOptions, streams genericiooptions.IOStreams) *cobra.Command {
	o := &Options{globals: globals, streams: streams, BackupDir: ".", MaxBackupAge: health.DefaultMaxBackupAge, PodStartTimeout: time.Minute}
	cmd := &cobra.Command{
		Use:   "health",
		Short: "Judge whether the cluster is healthy and ready for a disaster recovery",
		Long: templates.LongDesc(`
			Check what a disaster recovery rests on and give one verdict: the API
			(readyz, livez, its instances, the aggregated APIs), the cluster
			version, nodes, cluster operators, the four static-pod operators and a
			left-over quorum-guard override, etcd (members against control-plane
			nodes, health, leader, raft lag, database size against its quota,
			fragmentation, alarms), pending CSRs, certificate expiry (rotated and
			unrotated TLS secrets, the kubelet signer), Machines and the
			control-plane machine set, machine config pools, webhooks that fail
			closed without endpoints, the alerts the platform Prometheus has
			firing, the newest local backup in --backup-dir, and what
			oc-recover itself left behind.

			Every check says OK, WARN or FAIL, the evidence it read, and the
			command that fixes or diagnoses what it found. A check that cannot
			read what it judges fails.

			It only reads: nothing in the cluster changes. etcd is reached through
			the API (a port-forward to a running etcd pod and etcdctl in it), with
			the etcd-client certificate read into memory only; the alerts through
			an exec of curl in the prometheus container of
			openshift-monitoring/prometheus-k8s-0 (or -1), which asks Prometheus
			on its pod's localhost:9090. Without a monitoring stack that answers,
			alerts warns that it could not look.

			--deep adds the host checks, on each control-plane node through a debug
			pod (as oc debug node does), all removed afterwards: free space on /var
			and /var/lib/etcd (df; below 20 % warns, below 10 % fails), the clock as
			chrony tracks it (over a second off NTP time fails), the kubelet's
			client and serving certificates in /var/lib/kubelet/pki (expired fails,
			less than a week warns), and what /tmp is and holds (the documented
			manual recoveries move etcd's data there, which on RHCOS is memory).
			The workers are not visited: their disks show as DiskPressure.

			Exits 0 when every check is OK, 3 when one warns, 1 when one fails.`),
		Example: templates.Examples(`
			# Everything, as a table grouped by area
			{{root}} health

			# Only etcd and the certificates, for a monitoring script
			{{root}} health --only etcd,certs -o json

			# Also look at the control-plane hosts: disk, clock, kubelet certificates
			{{root}} health --deep

			# Before a shutdown of 60 days: are the certificates valid that long?
			{{root}} health --restart-by 60d --backup-dir /srv/etcd-backups`),
		Args: cobra.NoArgs,
		RunE: options.RunE(f, o),
	}
	cmd.Flags().StringVarP(&o.Output, "output", "o", output.Table, output.FlagUsage)
	cmd.Flags().StringSliceVar(&o.Only, "only", nil, "Run only these areas or checks (comma-separated, e.g. etcd,certs.signers).")
	cmd.Flags().StringSliceVar(&o.Skip, "skip", nil, "Skip these areas or checks (comma-separated).")
	cmd.Flags().StringVar(&o.BackupDir, "backup-dir", o.BackupDir, "Where the local backups are, as `backup --dir` wrote them.")
	cmd.Flags().DurationVar(&o.MaxBackupAge, "max-backup-age", o.MaxBackupAge, "How old the newest backup may be before it warns.")
	cmd.Flags().BoolVar(&o.Deep, "deep", o.Deep, "Also check each control-plane host through a debug pod: disk, clock, kubelet certificates, /tmp.")
	cmd.Flags().DurationVar(&o.PodStartTimeout, "pod-start-timeout", o.PodStartTimeout, "With --deep, how long to wait for each debug pod to start.")
	cmd.Flags().StringVar(&o.RestartBy, "restart-by", o.RestartBy, "When a planned shutdown ends: certificates that expire before and are not regenerated after an offline expiry warn. An RFC 3339 time or a duration from now (30d, 36h).")
	return cmd
}

// Complete keeps the getter and reads --restart-by against the time now.
func (o *Options) Complete(f genericclioptions.RESTClientGetter, _ []string) error {
	o.getter = f
	o.now = time.Now()
	if o.RestartBy == "" {
		return nil
	}
	t, err := power.ParseRestartBy(o.RestartBy, o.now)
	if err != nil {
		return exitcode.Usage(err)
	}
	o.until = t
	return nil
}

// Validate checks the flags.
func (o *Options) Validate() error {
	if err := output.Validate(o.Output); err != nil {
		return err
	}
	for flag, names := range map[string][]string{"--only": o.Only, "--skip": o.Skip} {
		if err := health.ValidateNames(names); err != nil {
			return exitcode.Usagef("%s: %v", flag, err)
		}
	}
	if o.MaxBackupAge <= 0 {
		return exitcode.Usagef("--max-backup-age must be positive, got %s", o.MaxBackupAge)
	}
	if !o.Deep {
		for _, n := range o.Only {
			if health.Area(n) == "hosts" {
				return exitcode.Usagef("--only %s: the host checks run only with --deep", n)
			}
		}
	}
	if o.PodStartTimeout <= 0 {
		return exitcode.Usagef("--pod-start-timeout must be positive, got %s", o.PodStartTimeout)
	}
	return nil
}

// connect builds the clients. The areas are read in parallel: client-go's
// default of 5 requests a second would make them wait on one another.
func (o *Options) connect() error {
	set, err := clients.FromGetter(o.getter, 50, 100)
	if err != nil {
		return err
	}
	o.clients = health.Clients{Kube: set.Kube, Config: set.OpenShiftConfig, Operator: set.Operator, Machine: set.Machine,
		MachineConfig: set.MachineConfig, REST: set.REST}
	o.era = set.Era()
	o.set = set
	return nil
}

// engine is the debug-node engine of --deep: its pods live no longer than
// the run may, and its progress lines go to stderr, away from -o json.
func (o *Options) engine() *debugnode.Engine {
	e := o.set.Engine(o.globals.Image, o.globals.Timeout+10*time.Minute, o.streams.ErrOut)
	e.StartTimeout = o.PodStartTimeout
	return e
}

// Run checks and prints the report; the exit code is the verdict's.
func (o *Options) Run(ctx context.Context) error {
	if err := o.connect(); err != nil {
		return err
	}
	ctx, cancel := o.globals.WithTimeout(ctx)
	defer cancel()
	if err := era.Refuse(ctx, o.era); err != nil {
		return err
	}
	opts := health.Options{Only: o.Only, Skip: o.Skip, BackupDir: o.BackupDir, MaxBackupAge: o.MaxBackupAge,
		Until: o.until, Command: o.globals.CommandName, Now: o.now, Deep: o.Deep}
	if o.Deep {
		opts.StartRunner = o.engine().Runner
	}
	r := health.Check(ctx, o.clients, opts)
	return output.HealthReport(o.streams.Out, o.Output, r)
}
