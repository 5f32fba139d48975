package power

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	configv1 "github.com/openshift/api/config/v1"
	configclient "github.com/openshift/client-go/config/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/oc-recover/oc-recover/pkg/csr"
	"github.com/oc-recover/oc-recover/pkg/era"
	"github.com/oc-recover/oc-recover/pkg/openshift"
)

// Startup brings a cluster that was shut down gracefully back, once its
// machines are powered on again (OpenShift 4.5 documentation, Backup and
// restore, chapter 4 "Restarting the cluster gracefully"): round after
// round it approves the valid CSRs of the nodes (a kubelet whose
// certificate expired while the cluster was down asks a new one) and judges
// the nodes and cluster operators, until the cluster is up or ctx ends. The
// API may not answer at first: a round that cannot read the cluster decides
// nothing, and the next one asks again.
type Startup struct {
	Approver *csr.Approver
	// Operators reads the ClusterOperators.
	Operators configclient.Interface
	// Era tells the release, which must be supported before anything is
	// approved.
	Era era.Clients
	// DryRun approves nothing and judges the cluster once.
	DryRun bool
	// Interval is how long to wait between rounds.
	Interval time.Duration
	// Confirm asks, before the first approval, whether to approve the
	// decisions marked Approve and the valid CSRs that arrive until the
	// cluster is up. Nil approves without asking.
	Confirm func(ds []csr.Decision) (bool, error)
	// PostOutage, if set, applies the post-outage rule to the nodes of
	// every round (csr.PostOutage): to the CSR decisions and to the nodes
	// counted Ready.
	PostOutage *csr.PostOutage
	// Also, if set, reads after every round the API answered what else
	// must settle before the cluster is up (certs recover: the operators'
	// CertRotation_*_Degraded conditions); the cluster is not up while it
	// returns any. Its error is a round's error: tried again.
	Also func(ctx context.Context) ([]Condition, error)

	// OnRetry, if set, is told of each round that could not read or judge
	// the cluster (the API does not answer yet); the next round follows
	// after Interval.
	OnRetry func(err error)
	// OnDecision, if set, is told after every round of each CSR approved
	// (or, in a dry run, to approve), each approval that failed (it is
	// tried again), and each CSR left pending for a reason worth a look.
	OnDecision func(d csr.Decision)
	// OnState, if set, is told after every round the API answered where
	// the restart stands, and how many CSRs were approved so far.
	OnState func(st State, approved int)
}

// StartupReport is startup's result.
type StartupReport struct {
	DryRun bool `json:"dryRun"`
	State
	Phase    Phase `json:"phase"`
	Approved int   `json:"approved"`
	// CSRs are the CSRs approved (or, in a dry run, to approve) and those
	// left pending for a reason worth a look.
	CSRs     []csr.Decision `json:"csrs"`
	TimedOut bool           `json:"timedOut,omitempty"`
}

// startupRun is what one run remembers between rounds.
type startupRun struct {
	state    State
	approved map[string]csr.Decision // by CSR name
	pending  map[string]csr.Decision // left pending, as last decided
	// release is set once the API has answered era.RequireSupported.
	release *era.Release
}

// Run approves and waits until the cluster is up (or, with DryRun, for one
// round that the API answers), or until ctx ends, and returns the report:
// Phase is Started when the cluster is up, and TimedOut is set when it is
// not and this was no dry run. It returns an error instead when the
// administrator declines the approvals (csr.ErrNotConfirmed) or the cluster
// runs a release this tool does not support.
func (s *Startup) Run(ctx context.Context) (*StartupReport, error) {
	run := &startupRun{approved: map[string]csr.Decision{}, pending: map[string]csr.Decision{}}
	rounds := &csr.Rounds{
		Approver: s.Approver,
		DryRun:   s.DryRun,
		Confirm:  s.Confirm,
		Interval: s.Interval,
		Retry:    s.OnRetry,
		Final:    era.IsUnsupported,

		PostOutage: s.PostOutage,
		// The API may not answer yet: that decides nothing, and the next
		// round asks again; only an answer that names an unsupported
		// release stops.
		Before: func(ctx context.Context) error {
			if run.release != nil {
				return nil
			}
			rel, err := era.RequireSupported(ctx, s.Era)
			if err != nil {
				return err
			}
			run.release = rel
			return nil
		},
	}
	err := rounds.Until(ctx, func(ctx context.Context, snap *csr.Snapshot, ds []csr.Decision) (bool, error) {
		s.note(run, ds)
		st, err := s.judge(ctx, snap.Nodes)
		if err != nil {
			return false, err
		}
		run.state = st
		if s.OnState != nil {
			s.OnState(st, len(run.approved))
		}
		return s.DryRun || st.Phase() == Started, nil
	})
	if errors.Is(err, csr.ErrNotConfirmed) || era.IsUnsupported(err) {
		return nil, err
	}
	return s.report(run), nil
}

// note records the CSRs approved and those left pending, and tells
// OnDecision.
func (s *Startup) note(run *startupRun, ds []csr.Decision) {
	run.pending = map[string]csr.Decision{}
	for _, d := range ds {
		switch d.Outcome {
		case csr.Approved, csr.WouldApprove:
			run.approved[d.Name] = d
		case csr.Failed:
		case csr.Pending:
			if !d.NeedsAttention() {
				continue
			}
			run.pending[d.Name] = d
		default:
			continue
		}
		if s.OnDecision != nil {
			s.OnDecision(d)
		}
	}
}

// judge counts the nodes Ready and reads and judges the cluster operators.
func (s *Startup) judge(ctx context.Context, nodes []corev1.Node) (State, error) {
	cos, err := s.Operators.ConfigV1().ClusterOperators().List(ctx, metav1.ListOptions{})
	if err != nil {
		return State{}, fmt.Errorf("list cluster operators: %w", err)
	}
	var st State
	st.ControlPlane, st.Workers = CountNodes(nodes)
	st.OperatorsOK, st.Operators = JudgeOperators(cos.Items)
	st.OperatorsTotal = len(cos.Items)
	if s.Also != nil {
		if st.Conditions, err = s.Also(ctx); err != nil {
			return State{}, err
		}
	}
	return st, nil
}

// report is the run's outcome. Until a round is answered the state is
// empty, and its Phase is WaitControlPlane.
func (s *Startup) report(run *startupRun) *StartupReport {
	r := &StartupReport{DryRun: s.DryRun, State: run.state, Phase: run.state.Phase(), Approved: len(run.approved), CSRs: []csr.Decision{}}
	for _, d := range run.approved {
		r.CSRs = append(r.CSRs, d)
	}
	for _, d := range run.pending {
		r.CSRs = append(r.CSRs, d)
	}
	csr.SortDecisions(r.CSRs)
	r.TimedOut = r.Phase != Started && !s.DryRun
	return r
}

// NodeCount is how many nodes of a role are Ready, and which are not.
type NodeCount struct {
	Ready    int      `json:"ready"`
	Total    int      `json:"total"`
	NotReady []string `json:"notReady,omitempty"`
}

// AllReady reports whether every node counted is Ready.
func (c NodeCount) AllReady() bool { return c.Ready == c.Total }

// OperatorProblem is a cluster operator that is not Available, or is
// Degraded.
type OperatorProblem struct {
	Name      string `json:"name"`
	Available string `json:"available"`
	Degraded  string `json:"degraded"`
	// Message is the Degraded condition's message, else the Available one's.
	Message string `json:"message,omitempty"`
}

func (p OperatorProblem) String() string {
	var what []string
	if p.Available != string(configv1.ConditionTrue) {
		what = append(what, "Available="+p.Available)
	}
	if p.Degraded != string(configv1.ConditionFalse) {
		what = append(what, "Degraded="+p.Degraded)
	}
	s := p.Name + " (" + strings.Join(what, ", ") + ")"
	if p.Message != "" {
		s += ": " + p.Message
	}
	return s
}

// State is a restarting cluster as `startup` judges it.
type State struct {
	ControlPlane NodeCount `json:"controlPlane"`
	Workers      NodeCount `json:"workers"`
	// OperatorsOK counts the cluster operators Available and not Degraded,
	// of OperatorsTotal.
	OperatorsOK    int               `json:"operatorsOK"`
	OperatorsTotal int               `json:"operatorsTotal"`
	Operators      []OperatorProblem `json:"operatorProblems,omitempty"`
	// Conditions are what else the run waits for (Startup.Also).
	Conditions []Condition `json:"conditions,omitempty"`
}

// Condition is a condition a run waits on besides the nodes and the
// cluster operators: one of an object's status conditions.
type Condition struct {
	// Object names what carries it: "kubeapiserver/cluster".
	Object  string `json:"object"`
	Type    string `json:"type"`
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
}

func (c Condition) String() string {
	s := c.Object + " " + c.Type + "=" + c.Status
	if c.Message != "" {
		s += ": " + c.Message
	}
	return s
}

// Phase is what startup waits for, in the order of OpenShift 4.5
// documentation, Backup and restore, 4.2 "Restarting the cluster": the
// control-plane nodes, then the workers, then the cluster operators.
type Phase string

const (
	WaitControlPlane Phase = "control-plane nodes"
	WaitWorkers      Phase = "worker nodes"
	WaitConditions   Phase = "conditions"
	WaitOperators    Phase = "cluster operators"
	Started          Phase = "started"
)

// Phase is the first thing not done yet. The conditions (Startup.Also)
// come before the cluster operators: these settle only after them.
func (s State) Phase() Phase {
	switch {
	case !s.ControlPlane.AllReady() || s.ControlPlane.Total == 0:
		return WaitControlPlane
	case !s.Workers.AllReady():
		return WaitWorkers
	case len(s.Conditions) > 0:
		return WaitConditions
	case s.OperatorsOK < s.OperatorsTotal || s.OperatorsTotal == 0:
		return WaitOperators
	}
	return Started
}

// CountNodes counts the control-plane and worker nodes Ready.
func CountNodes(nodes []corev1.Node) (controlPlane, workers NodeCount) {
	for i := range nodes {
		n := &nodes[i]
		c := &workers
		if openshift.IsControlPlane(n) {
			c = &controlPlane
		}
		c.Total++
		if openshift.NodeReady(n) {
			c.Ready++
		} else {
			c.NotReady = append(c.NotReady, n.Name)
		}
	}
	sort.Strings(controlPlane.NotReady)
	sort.Strings(workers.NotReady)
	return controlPlane, workers
}

// JudgeOperators counts the cluster operators that are Available=True and
// Degraded=False, and lists the others by name. A missing condition counts
// as Unknown: not good.
func JudgeOperators(cos []configv1.ClusterOperator) (ok int, problems []OperatorProblem) {
	for _, co := range cos {
		p := OperatorProblem{Name: co.Name, Available: "Unknown", Degraded: "Unknown"}
		var availableMsg, degradedMsg string
		for _, c := range co.Status.Conditions {
			switch c.Type {
			case configv1.OperatorAvailable:
				p.Available, availableMsg = string(c.Status), c.Message
			case configv1.OperatorDegraded:
				p.Degraded, degradedMsg = string(c.Status), c.Message
			}
		}
		if p.Available == string(configv1.ConditionTrue) && p.Degraded == string(configv1.ConditionFalse) {
			ok++
			continue
		}
		p.Message = availableMsg
		if p.Degraded != string(configv1.ConditionFalse) && degradedMsg != "" {
			p.Message = degradedMsg
		}
		problems = append(problems, p)
	}
	sort.Slice(problems, func(i, j int) bool { return problems[i].Name < problems[j].Name })
	return ok, problems
}

// Progress is the one-line account of where a restart stands.
func (s State) Progress(approved int) string {
	switch s.Phase() {
	case WaitControlPlane:
		return fmt.Sprintf("%d of %d control-plane nodes Ready%s; approved %d CSR(s)", s.ControlPlane.Ready, s.ControlPlane.Total, notReady(s.ControlPlane), approved)
	case WaitWorkers:
		return fmt.Sprintf("every control-plane node Ready; %d of %d worker nodes Ready%s; approved %d CSR(s)", s.Workers.Ready, s.Workers.Total, notReady(s.Workers), approved)
	case WaitConditions:
		names := make([]string, len(s.Conditions))
		for i, c := range s.Conditions {
			names[i] = c.Object + " " + c.Type
		}
		return fmt.Sprintf("every node Ready; waiting for %d condition(s) to clear: %s", len(s.Conditions), strings.Join(names, ", "))
	case WaitOperators:
		names := make([]string, len(s.Operators))
		for i, p := range s.Operators {
			names[i] = p.Name
		}
		return fmt.Sprintf("every node Ready; %d of %d cluster operators available and not degraded (waiting for %s)", s.OperatorsOK, s.OperatorsTotal, strings.Join(names, ", "))
	}
	return fmt.Sprintf("every node Ready; %d of %d cluster operators available and not degraded", s.OperatorsOK, s.OperatorsTotal)
}

func notReady(c NodeCount) string {
	if len(c.NotReady) == 0 {
		return ""
	}
	return " (not Ready: " + strings.Join(c.NotReady, ", ") + ")"
}
