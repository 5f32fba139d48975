package certs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/kubectl/pkg/util/templates"

	recovery "github.com/oc-recover/oc-recover/pkg/certs"
	"github.com/oc-recover/oc-recover/pkg/cmd/internal/clients"
	"github.com/oc-recover/oc-recover/pkg/cmd/internal/options"
	"github.com/oc-recover/oc-recover/pkg/cmd/internal/output"
	"github.com/oc-recover/oc-recover/pkg/cmd/internal/prompt"
	"github.com/oc-recover/oc-recover/pkg/csr"
	"github.com/oc-recover/oc-recover/pkg/exitcode"
	"github.com/oc-recover/oc-recover/pkg/health"
	"github.com/oc-recover/oc-recover/pkg/power"
)

var recoverLong = templates.LongDesc(`
	Recover a cluster whose control-plane certificates expired, for example
	one shut down before its first certificate rotation or past its
	certificates' expiry (OpenShift 4.12 documentation, Backup and restore,
	5.4.3 "Recovering from expired control plane certificates"). From
	OpenShift 4.4.8 on the cluster regenerates them itself once the
	kube-apiserver runs; what is left is approving the nodes' CSRs.

	Until --timeout, in four steps:

	1. Wait for the API, saying what the certificate it presents tells (an
	expired one: the kube-apiserver's cert-regeneration controller renews
	it, usually within about ten minutes).

	2. Round after round, approve the pending CSRs of nodes that pass
	validation, exactly as "{{root}} csr approve" does: the
	node-bootstrapper's client CSRs, then the nodes' serving CSRs, which on
	user-provisioned clusters nothing else approves. After an outage the API
	still shows the nodes Ready from before it: a node whose kubelet renews
	neither its lease (kube-node-lease) nor its heartbeat for longer than the
	lease's duration while this command watches counts as not Ready, so its
	bootstrapper CSR is approved; one for a node whose kubelet is alive is
	refused, as a takeover.

	3. Wait for every node to be Ready, the operators' CertRotation_*_Degraded
	conditions to clear and the cluster operators to be Available and not
	Degraded.

	4. Report the certificate checks of "{{root}} certs" that still fail
	(such as a user-provided certificate that nothing renews), and what to do
	about them: "oc adm ocp-certificates" on 4.14 and later. It never
	regenerates a certificate or a signer itself.

	When the API does not answer by --timeout, it prints what to do at the
	control-plane hosts' consoles (console access is needed: the clocks,
	which when wrong give the same x509 errors, and the logs of etcd,
	kube-apiserver and kube-apiserver-cert-regeneration-controller). On
	OpenShift 4.3, whose recovery is a host procedure around a recovery API
	server, it approves nothing and prints that procedure rendered with the
	cluster's release image and nodes.

	Exit 0 when the control plane has recovered and no certificate check
	fails; 3 when the API is back but nodes, certificate rotations, cluster
	operators or certificates still need attention, with a report; 1 when the
	API never answered, or on OpenShift 4.3. With --dry-run it looks once,
	approves nothing (and cannot tell a stale Ready from a live one yet: that
	takes watching) and exits as it finds the cluster.`)

var recoverExample = templates.Examples(`
	# After powering the machines on, past the certificates' expiry
	{{root}} certs recover --timeout 40m

	# Where does the recovery stand, and which CSRs would be approved?
	{{root}} certs recover --dry-run -o yaml`)

// defaultRecoverInterval is how often recover looks again, as startup does.
const defaultRecoverInterval = 2 * time.Second

// RecoverOptions holds `certs recover`'s flags and clients.
type RecoverOptions struct {
	Output   string
	Interval time.Duration

	globals *options.GlobalOptions
	streams genericiooptions.IOStreams
	getter  genericclioptions.RESTClientGetter
	set     *clients.Set
}

// NewCmdRecover returns the certs recover command.
func NewCmdRecover(f genericclioptions.RESTClientGetter, globals *options.GlobalOptions, streams genericiooptions.IOStreams) *cobra.Command {
	o := &RecoverOptions{Output: output.Table, Interval: defaultRecoverInterval, globals: globals, streams: streams}
	cmd := &cobra.Command{
		Use:     "recover",
		Short:   "Recover from expired control-plane certificates: approve the nodes' valid CSRs, wait, report what is still expired",
		Long:    recoverLong,
		Example: recoverExample,
		Args:    cobra.NoArgs,
		RunE:    options.RunE(f, o),
	}
	cmd.Flags().StringVarP(&o.Output, "output", "o", o.Output, "Format of the final report: table, json or yaml (progress then goes to stderr).")
	cmd.Flags().DurationVar(&o.Interval, "interval", o.Interval, "How often to look again.")
	_ = cmd.Flags().MarkHidden("interval")
	return cmd
}

// Complete keeps the getter for Run.
func (o *RecoverOptions) Complete(f genericclioptions.RESTClientGetter, _ []string) error {
	o.getter = f
	return nil
}

// Validate checks the flags.
func (o *RecoverOptions) Validate() error {
	if err := output.Validate(o.Output); err != nil {
		return err
	}
	if o.Interval <= 0 {
		return exitcode.Usagef("--interval must be positive, got %s", o.Interval)
	}
	return nil
}

// recoverSteps are the steps progress names, by the phase that starts each.
var recoverSteps = []struct {
	title  string
	phases []recovery.Phase
}{
	{"Waiting for the API", []recovery.Phase{recovery.WaitAPI}},
	{"Approving the nodes' CSRs and waiting for the nodes to be Ready", []recovery.Phase{recovery.WaitControlPlane, recovery.WaitWorkers}},
	{"Waiting for the certificate rotations to clear and the cluster operators to settle", []recovery.Phase{recovery.WaitRotations, recovery.WaitOperators}},
	{"Checking what is still expired", []recovery.Phase{recovery.Recovered}},
}

func stepOf(p recovery.Phase) int {
	for i, s := range recoverSteps {
		for _, q := range s.phases {
			if q == p {
				return i
			}
		}
	}
	return 0
}

// progress says each step once as it starts ("[2/4] ..."), and each line
// once until it changes.
type progress struct {
	out      io.Writer
	step     int
	said     bool
	lines    map[string]string
	answered bool
}

// enter says the step's title when the run comes to it, and again when it
// comes back to it (a node that turns out not Ready after all).
func (p *progress) enter(step int) {
	if step == p.step && p.said {
		return
	}
	p.step, p.said = step, true
	fmt.Fprintf(p.out, "[%d/%d] %s\n", step+1, len(recoverSteps), recoverSteps[step].title)
}

func (p *progress) say(key, line string) {
	if p.lines[key] != line {
		p.lines[key] = line
		fmt.Fprintln(p.out, "  "+line)
	}
}

// Run recovers and reports.
func (o *RecoverOptions) Run(ctx context.Context) error {
	var err error
	if o.set, err = clients.FromGetter(o.getter, 500, 1000); err != nil {
		return err
	}
	ctx, cancel := o.globals.WithTimeout(ctx)
	defer cancel()
	out := output.HumanWriter(o.Output, o.streams)
	p := &progress{out: out, lines: map[string]string{}}
	p.enter(0)
	s := &power.Startup{
		Approver:  &csr.Approver{Kube: o.set.Kube, Machine: o.set.Machine},
		Operators: o.set.OpenShiftConfig,
		Era:       o.set.Era(),
		DryRun:    o.globals.DryRun,
		Interval:  o.Interval,
		OnRetry:   func(err error) { p.say("api", "Waiting for the API: "+err.Error()) },
		OnDecision: func(d csr.Decision) {
			// An approval is the nodes' step's work, whatever step the
			// nodes seemed to be past (they looked Ready until watched).
			if p.step == 0 || d.Outcome == csr.Approved || d.Outcome == csr.WouldApprove {
				p.enter(1)
			}
			p.say("csr/"+d.Name, csrLine(d))
		},
		OnState: func(st power.State, approved int) {
			p.lines["api"] = ""
			if !p.answered {
				p.answered = true
				fmt.Fprintln(out, "  The API answers. It still shows the nodes as they were before the outage: a node counts as not Ready once its kubelet has renewed neither its lease nor its heartbeat for longer than its lease's duration (40s by default) while this runs.")
			}
			if phase := st.Phase(); phase != power.Started {
				p.enter(max(1, stepOf(recovery.PhaseOf(phase))))
				p.say("state", st.Progress(approved))
			}
		},
	}
	if !o.globals.Yes && !o.globals.DryRun && prompt.IsTerminal(o.streams.In) {
		s.Confirm = func(ds []csr.Decision) (bool, error) {
			for _, d := range ds {
				if d.Approve {
					fmt.Fprintf(out, "  %s: %s for %s: %s\n", d.Name, d.Kind, d.Node, d.Reason)
				}
			}
			return prompt.Confirm(o.streams.In, out, fmt.Sprintf("Approve these %d CSR(s), and the valid CSRs of nodes that arrive until the control plane has recovered?", csr.CountApprove(ds)))
		}
	}
	command := o.globals.CommandName
	r := &recovery.Recover{
		Startup: s, Operator: o.set.Operator, Kube: o.set.Kube, Config: o.set.OpenShiftConfig, REST: o.set.REST,
		Command: command, Waited: o.globals.Timeout,
		Certs: func(ctx context.Context) []health.Result {
			hc := health.Clients{Kube: o.set.Kube, Config: o.set.OpenShiftConfig, Operator: o.set.Operator, REST: o.set.REST}
			return health.Check(ctx, hc, health.Options{Only: []string{"certs"}, Command: command, Now: time.Now()}).Checks
		},
		OnDiagnosis: func(d string) { p.say("diagnosis", d) },
	}
	rep, runErr := r.Run(ctx)
	if rep == nil {
		return runErr
	}
	if rep.Phase == recovery.Recovered {
		p.enter(3)
	}
	if output.Structured(o.Output) {
		if err := output.Print(o.streams.Out, o.Output, rep); err != nil {
			return err
		}
	} else {
		o.printReport(rep)
	}
	if runErr != nil {
		return runErr
	}
	code, why := recovery.Verdict(rep)
	switch {
	case code == exitcode.CodeSuccess:
		return nil
	case ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("interrupted before the control plane had recovered (%s)", why)
	case code == exitcode.CodeFailure:
		return fmt.Errorf("%s within %s; see the procedure above", why, o.globals.Timeout)
	case o.globals.DryRun:
		return exitcode.NeedsAttentionf("dry run: %s", why)
	case rep.Phase != recovery.Recovered:
		return exitcode.NeedsAttentionf("timed out after %s before the control plane had recovered (%s); see the report above", o.globals.Timeout, why)
	}
	return exitcode.NeedsAttentionf("%s; see the report above", why)
}

// csrLine is what is said of a CSR approved, failed or left pending.
func csrLine(d csr.Decision) string {
	switch d.Outcome {
	case csr.Approved, csr.WouldApprove:
		verb := "Approved"
		if d.Outcome == csr.WouldApprove {
			verb = "Would approve"
		}
		return fmt.Sprintf("%s CSR %s (%s, %s): %s", verb, d.Name, d.Kind, output.OrDash(d.Node), d.Reason)
	case csr.Failed:
		return fmt.Sprintf("warning: approving CSR %s failed: %s; trying again", d.Name, d.Error)
	}
	return fmt.Sprintf("Left pending CSR %s (%s, requested by %s): %s: %s", d.Name, d.Kind, d.Requester, d.Category, d.Reason)
}

func (o *RecoverOptions) printReport(r *recovery.Report) {
	out := o.streams.Out
	if len(r.Procedure) > 0 {
		fmt.Fprintln(out, strings.Join(r.Procedure, "\n"))
		return
	}
	dry := ""
	if r.DryRun {
		dry = "Dry run, nothing changed. "
	}
	if r.Phase == recovery.Recovered {
		fmt.Fprintf(out, "%sThe control plane has recovered: %d control-plane and %d worker node(s) Ready, no certificate rotation failing, %d of %d cluster operators available and not degraded; approved %d CSR(s).\n",
			dry, r.ControlPlane.Total, r.Workers.Total, r.OperatorsOK, r.OperatorsTotal, r.Approved)
	} else {
		fmt.Fprintf(out, "%sThe control plane has not recovered yet (waiting for %s).\n", dry, r.Phase)
		fmt.Fprintf(out, "Control-plane nodes Ready: %d of %d%s\n", r.ControlPlane.Ready, r.ControlPlane.Total, list(r.ControlPlane.NotReady))
		fmt.Fprintf(out, "Worker nodes Ready: %d of %d%s\n", r.Workers.Ready, r.Workers.Total, list(r.Workers.NotReady))
		fmt.Fprintf(out, "Certificate rotations failing: %d\n", len(r.Conditions))
		for _, c := range r.Conditions {
			fmt.Fprintf(out, "  %s\n", c)
		}
		fmt.Fprintf(out, "Cluster operators available and not degraded: %d of %d\n", r.OperatorsOK, r.OperatorsTotal)
		for _, p := range r.Operators {
			fmt.Fprintf(out, "  %s\n", p)
		}
		fmt.Fprintf(out, "CSRs approved: %d\n", r.Approved)
	}
	var pending []csr.Decision
	for _, d := range r.CSRs {
		if d.Outcome == csr.Pending {
			pending = append(pending, d)
		}
	}
	fmt.Fprintf(out, "CSRs left pending: %d\n", len(pending))
	for _, d := range pending {
		fmt.Fprintf(out, "  %s (%s, requested by %s): %s: %s\n", d.Name, d.Kind, d.Requester, d.Category, d.Reason)
	}
	if checks := append(append([]health.Result{}, r.StillExpired...), r.Warnings...); len(checks) > 0 {
		fmt.Fprintf(out, "\nCertificates still expired: %d check(s) fail, %d warn\n", len(r.StillExpired), len(r.Warnings))
		output.HealthTable(out, health.NewReport(checks))
	} else {
		fmt.Fprintln(out, "No certificate check fails or warns.")
	}
	if len(r.Pointers) > 0 {
		fmt.Fprintln(out, "\nWhat to do:")
		for _, p := range r.Pointers {
			fmt.Fprintf(out, "  - %s\n", p)
		}
	}
}

func list(names []string) string {
	if len(names) == 0 {
		return ""
	}
	return " (not Ready: " + strings.Join(names, ", ") + ")"
}
