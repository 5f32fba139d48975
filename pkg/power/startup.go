package power

import (
	"fmt"
	"sort"
	"strings"

	configv1 "github.com/openshift/api/config/v1"
	corev1 "k8s.io/api/core/v1"
)

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
}

// Phase is what startup waits for, in the order of OpenShift 4.5
// documentation, Backup and restore, 4.2 "Restarting the cluster": the
// control-plane nodes, then the workers, then the cluster operators.
type Phase string

const (
	WaitControlPlane Phase = "control-plane nodes"
	WaitWorkers      Phase = "worker nodes"
	WaitOperators    Phase = "cluster operators"
	Started          Phase = "started"
)

// Phase is the first thing not done yet.
func (s State) Phase() Phase {
	switch {
	case !s.ControlPlane.AllReady() || s.ControlPlane.Total == 0:
		return WaitControlPlane
	case !s.Workers.AllReady():
		return WaitWorkers
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
		if IsControlPlane(n) {
			c = &controlPlane
		}
		c.Total++
		if IsReady(n) {
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
