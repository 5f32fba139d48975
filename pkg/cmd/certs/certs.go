// Package certs implements `oc recover certs`: the certificate checks of
// `health`, on their own.
package certs

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
	"github.com/oc-recover/oc-recover/pkg/era"
	"github.com/oc-recover/oc-recover/pkg/exitcode"
	"github.com/oc-recover/oc-recover/pkg/health"
	"github.com/oc-recover/oc-recover/pkg/power"
)

// Options holds `certs`' flags and clients.
type Options struct {
	Output    string
	RestartBy string

	globals *options.GlobalOptions
	streams genericiooptions.IOStreams
	getter  genericclioptions.RESTClientGetter
	clients health.Clients
	era     era.Clients
	now     time.Time
	until   time.Time
}

// NewCmdCerts returns the certs command.
func NewCmdCerts(f genericclioptions.RESTClientGetter, globals *options.GlobalOptions, streams genericiooptions.IOStreams) *cobra.Command {
	o := &Options{globals: globals, streams: streams}
	cmd := &cobra.Command{
		Use:   "certs",
		Short: "Report the expiry of the cluster's certificates",
		Long: templates.LongDesc(`
			Report, as "{{root}} health --only certs" does, when the cluster's
			certificates expire: the one the API server presents at the
			kubeconfig's address (read without trusting it, and checked against
			the kubeconfig's CA), every certificate OpenShift rotates (secrets
			annotated auth.openshift.io/certificate-not-after), the TLS secrets
			in openshift-* namespaces that nothing rotates (such as a custom
			ingress certificate), and the kube-apiserver-to-kubelet signer.

			Before a planned shutdown, --restart-by says when the cluster will
			start again: a certificate that expires before and is not
			regenerated after an offline expiry warns.

			It only reads. Exits 0 when every check is OK, 3 when one warns, 1
			when one fails. To recover from expired certificates, see
			"{{root}} certs recover".`),
		Example: templates.Examples(`
			{{root}} certs
			{{root}} certs --restart-by 60d -o json`),
		Args: cobra.NoArgs,
		RunE: options.RunE(f, o),
	}
	cmd.Flags().StringVarP(&o.Output, "output", "o", output.Table, output.FlagUsage)
	cmd.Flags().StringVar(&o.RestartBy, "restart-by", "", "When a planned shutdown ends: an RFC 3339 time or a duration from now (30d, 36h).")
	cmd.AddCommand(NewCmdRecover(f, globals, streams))
	return cmd
}

// Complete keeps the getter and reads --restart-by against the time now.
func (o *Options) Complete(f genericclioptions.RESTClientGetter, _ []string) error {
	o.getter, o.now = f, time.Now()
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
func (o *Options) Validate() error { return output.Validate(o.Output) }

func (o *Options) connect() error {
	set, err := clients.FromGetter(o.getter, 0, 0)
	if err != nil {
		return err
	}
	o.clients = health.Clients{Kube: set.Kube, Config: set.OpenShiftConfig, Operator: set.Operator, REST: set.REST}
	o.era = set.Era()
	return nil
}

// Run checks the certificates and prints the report.
func (o *Options) Run(ctx context.Context) error {
	if err := o.connect(); err != nil {
		return err
	}
	ctx, cancel := o.globals.WithTimeout(ctx)
	defer cancel()
	if err := era.Refuse(ctx, o.era); err != nil {
		return err
	}
	r := health.Check(ctx, o.clients, health.Options{Only: []string{"certs"}, Until: o.until, Command: o.globals.CommandName, Now: o.now})
	return output.HealthReport(o.streams.Out, o.Output, r)
}
