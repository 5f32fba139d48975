package member

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/oc-recover/oc-recover/pkg/debugnode"
	"github.com/oc-recover/oc-recover/pkg/openshift"
	"github.com/oc-recover/oc-recover/pkg/runbook"
)

// firstReadTimeout bounds the replacement's first API read.
const firstReadTimeout = 20 * time.Second

// ReplaceClients are what a replacement needs: the API clients and a way
// to run commands on a host.
type ReplaceClients struct {
	Clients
	StartRunner debugnode.StartFunc
}

// ReplaceOptions shape a replacement.
type ReplaceOptions struct {
	Node     string
	MemberID string
	Now      time.Time
	// PollInterval paces the waits (default 2s).
	PollInterval time.Duration
	// Command is how the user runs the plugin ("oc recover", "kubectl
	// recover"), for the commands its messages advise; empty means
	// "oc recover".
	Command string
}

// command is opts.Command, or "oc recover" when the caller gave none.
func (o ReplaceOptions) command() string {
	if o.Command == "" {
		return "oc recover"
	}
	return o.Command
}

// Replacement is a planned (or resumed) replacement of one member.
type Replacement struct {
	Record   *Record
	Resuming bool
	Report   *Report
	Decision Decision

	c    ReplaceClients
	opts ReplaceOptions
}

// PlanReplace reads the cluster and decides whether and how the member of
// opts.Node can be replaced. It changes nothing. A replacement that an
// earlier run started (its record on etcd/cluster) is resumed, whatever the
// member's state now.
func PlanReplace(ctx context.Context, c ReplaceClients, opts ReplaceOptions) (*Replacement, error) {
	if opts.PollInterval == 0 {
		opts.PollInterval = 2 * time.Second
	}
	// The first read is bounded: when etcd has lost quorum the API server
	// cannot answer, and waiting the whole --timeout tells nothing more.
	rctx, cancel := context.WithTimeout(ctx, firstReadTimeout)
	rec, err := ReadRecord(rctx, c.Operator)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("%w\nThe API server cannot read etcd. If etcd has lost quorum (most of its members down), replacing a member cannot help: restore the cluster from a backup, by OpenShift's procedure (OpenShift 4.5 documentation, Backup and restore, 5.3 \"Restoring to a previous cluster state\")", err)
	}
	if rec != nil && rec.Node != opts.Node {
		return nil, fmt.Errorf("refusing: a replacement of the member of %s is in progress (started %s, recorded on etcd/cluster annotation %s); finish it first with `%s member replace %s`",
			rec.Node, rec.Started.Format(time.RFC3339), RecordAnnotation, opts.command(), rec.Node)
	}
	report, err := Gather(ctx, c.Clients, opts.Command)
	if err != nil {
		return nil, err
	}
	p := &Replacement{Record: rec, Resuming: rec != nil, Report: report, c: c, opts: opts}
	if p.Resuming {
		if opts.MemberID != "" && !strings.EqualFold(strings.TrimPrefix(opts.MemberID, "0x"), rec.MemberID) {
			return nil, fmt.Errorf("refusing: --member-id %s does not match the replacement in progress, of member %s", opts.MemberID, rec.MemberID)
		}
		return p, nil
	}
	t, err := p.target(ctx)
	if err != nil {
		return nil, err
	}
	d, err := Judge(report, t)
	if err != nil {
		return nil, err
	}
	p.Decision = d
	p.Record = &Record{Node: opts.Node, MemberID: d.Member.MemberID, Procedure: d.Procedure, Started: opts.Now.UTC(), Override: d.Override, Machine: t.Machine}
	if len(d.Member.PeerURLs) > 0 {
		p.Record.PeerURL = d.Member.PeerURLs[0]
	}
	if d.Procedure == ProcedureMachine {
		if err := p.prepareMachine(ctx); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// target reads the node and its Machine.
func (p *Replacement) target(ctx context.Context) (Target, error) {
	t := Target{Node: p.opts.Node, MemberID: p.opts.MemberID}
	node, err := p.c.Kube.CoreV1().Nodes().Get(ctx, p.opts.Node, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return t, nil
	case err != nil:
		return t, fmt.Errorf("read node %s: %w", p.opts.Node, err)
	}
	t.NodeExists = true
	t.ControlPlane = openshift.IsControlPlane(node)
	for _, a := range node.Status.Addresses {
		t.Addresses = append(t.Addresses, a.Address)
	}
	if p.c.Machine == nil {
		return t, nil
	}
	machines, err := p.c.Machine.MachineV1beta1().Machines(machineNamespace).List(ctx, metav1.ListOptions{LabelSelector: masterMachineSelect})
	switch {
	case apierrors.IsNotFound(err):
		return t, nil // no Machine API
	case err != nil:
		return t, fmt.Errorf("list machines: %w", err)
	}
	t.MachineAPI = len(machines.Items) > 0
	for _, m := range machines.Items {
		if m.Status.NodeRef != nil && m.Status.NodeRef.Name == p.opts.Node && m.DeletionTimestamp == nil {
			t.Machine = m.Name
			for _, a := range m.Status.Addresses {
				t.Addresses = append(t.Addresses, a.Address)
			}
		}
	}
	return t, nil
}

// stepID names a step of a replacement; each is built by one method of
// Replacement (stepBuilders), next to the code it runs.
type stepID int

const (
	stepRecord stepID = iota
	stepMoveAside
	stepRemoveMember
	stepDeleteSecrets
	stepWaitForHost
	stepLiftGuard
	stepDeleteMachine
	stepCreateMachine
	stepRedeploy
	stepVerify
	stepFinish
)

// procedureSteps is each procedure's steps, in order. stepLiftGuard is left
// out when the replacement does not need the quorum-guard override.
var procedureSteps = map[string][]stepID{
	ProcedureCrashloop: {stepRecord, stepMoveAside, stepRemoveMember, stepDeleteSecrets, stepLiftGuard, stepRedeploy, stepVerify, stepFinish},
	ProcedureMachine:   {stepRecord, stepRemoveMember, stepDeleteSecrets, stepLiftGuard, stepDeleteMachine, stepCreateMachine, stepRedeploy, stepVerify, stepFinish},
	ProcedureUPI:       {stepRecord, stepRemoveMember, stepDeleteSecrets, stepWaitForHost, stepLiftGuard, stepRedeploy, stepVerify, stepFinish},
}

// commonSteps are the steps of a recorded procedure this version does not
// know (written by hand, or by another version): only the steps every
// procedure shares.
var commonSteps = []stepID{stepRecord, stepLiftGuard, stepRedeploy, stepVerify, stepFinish}

var stepBuilders = map[stepID]func(*Replacement) runbook.Step{
	stepRecord:        (*Replacement).recordStep,
	stepMoveAside:     (*Replacement).moveAsideStep,
	stepRemoveMember:  (*Replacement).removeMemberStep,
	stepDeleteSecrets: (*Replacement).deleteSecretsStep,
	stepWaitForHost:   (*Replacement).waitForHostStep,
	stepLiftGuard:     (*Replacement).liftGuardStep,
	stepDeleteMachine: (*Replacement).deleteMachineStep,
	stepCreateMachine: (*Replacement).createMachineStep,
	stepRedeploy:      (*Replacement).redeployStep,
	stepVerify:        (*Replacement).verifyStep,
	stepFinish:        (*Replacement).finishStep,
}

// steps is the replacement's procedure as runbook steps.
func (p *Replacement) steps() []runbook.Step {
	ids, ok := procedureSteps[p.Record.Procedure]
	if !ok {
		ids = commonSteps
	}
	var steps []runbook.Step
	for _, id := range ids {
		if id == stepLiftGuard && !p.Record.Override {
			continue
		}
		steps = append(steps, stepBuilders[id](p))
	}
	return steps
}

// Steps is the ordered plan, the steps an earlier run completed marked
// done (runbook.Plan: only the leading steps are judged; fewer etcd pods
// than nodes, say, means something else before the new Machine exists).
func (p *Replacement) Steps(ctx context.Context) ([]runbook.Planned, error) {
	return runbook.Plan(ctx, p.steps())
}

func (p *Replacement) recordStep() runbook.Step {
	r := p.Record
	return runbook.Step{
		Title:  "record the replacement on etcd/cluster",
		Detail: []string{fmt.Sprintf("annotate etcd/cluster %s (member %s, procedure %s; removed at the end)", RecordAnnotation, r.MemberID, r.Procedure)},
		Done: func(ctx context.Context) (bool, error) {
			rec, err := ReadRecord(ctx, p.c.Operator)
			return rec != nil, err
		},
		Run: func(ctx context.Context, _ io.Writer) error { return writeRecord(ctx, p.c.Operator, r) },
	}
}

// ErrStopped is returned when the replacement waits for the administrator.
var ErrStopped = errors.New("stopped: waiting for the administrator")

// Run carries out the plan's steps that are not done yet, re-reading the
// cluster before each (runbook.Run). The quorum guard is always put back,
// also on failure and interruption.
func (p *Replacement) Run(ctx context.Context, out io.Writer) (err error) {
	defer func() {
		if err != nil {
			if ferr := p.finish(context.WithoutCancel(ctx), out, false); ferr != nil {
				err = fmt.Errorf("%w; and putting the quorum guard back failed: %v (set etcd/cluster spec.unsupportedConfigOverrides back by hand)", err, ferr)
			}
		}
	}()
	return runbook.Run(ctx, out, p.steps())
}

// poll waits for cond, pacing by the poll interval, until ctx ends.
func (p *Replacement) poll(ctx context.Context, what string, cond func(ctx context.Context) (bool, string, error)) error {
	return PollEvery(p.opts.PollInterval)(ctx, what, cond)
}

// Poll waits for cond (done, the state last seen, an error that ends the
// wait) until ctx ends; what names the wait in its error.
type Poll func(ctx context.Context, what string, cond func(ctx context.Context) (bool, string, error)) error

// PollEvery is a Poll that looks every interval.
func PollEvery(interval time.Duration) Poll {
	return func(ctx context.Context, what string, cond func(ctx context.Context) (bool, string, error)) error {
		var state string
		err := wait.PollUntilContextCancel(ctx, interval, true, func(ctx context.Context) (bool, error) {
			ok, s, err := cond(ctx)
			state = s
			return ok, err
		})
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("timed out (--timeout) waiting for %s (last seen: %s); run the command again to continue", what, state)
			}
			return fmt.Errorf("waiting for %s (last seen: %s): %w", what, state, err)
		}
		return nil
	}
}
