package health

import (
	"fmt"
	"sort"
	"strings"
	"time"

	machinev1 "github.com/openshift/api/machine/v1"
	machinev1beta1 "github.com/openshift/api/machine/v1beta1"
	mcfgv1 "github.com/openshift/api/machineconfiguration/v1"
	corev1 "k8s.io/api/core/v1"
)

// MachineRoleLabel is the label that tells a control-plane Machine
// ("master") from the others.
const MachineRoleLabel = "machine.openshift.io/cluster-api-machine-role"

// Thresholds: a cloud instance boots and joins in 10 to 20 minutes; a
// rollout of a machine config drains and reboots one node at a time, and
// an hour without progress is a stuck node, not a slow one.
const (
	machineStuck = 30 * time.Minute
	poolStuck    = time.Hour
)

// Machines judges the Machine API's Machines against the Nodes: FAIL when
// a control-plane Machine has Failed, or has been Provisioned or Running
// for 30 minutes without a node; WARN when a Machine has been Provisioning
// for 30 minutes, reports an error, or names a node that does not exist,
// and when a node has no Machine although the Machine API manages the
// cluster's hosts. Machine ages count from creation, the only time every
// phase has. No Machines at all is a cluster whose hosts the Machine API
// does not manage (user-provisioned): OK.
func Machines(machines []machinev1beta1.Machine, nodes []corev1.Node, now time.Time) Result {
	r := Result{ID: "machines", Severity: OK}
	if len(machines) == 0 {
		r.Summary = "no Machine API objects: hosts are not managed by the Machine API"
		return r
	}
	nodeNames := map[string]bool{}
	for _, n := range nodes {
		nodeNames[n.Name] = true
	}
	withMachine := map[string]bool{}
	var replace []string
	for i := range machines {
		m := &machines[i]
		cp := m.Labels[MachineRoleLabel] == "master"
		phase, node := "", ""
		if m.Status.Phase != nil {
			phase = *m.Status.Phase
		}
		if m.Status.NodeRef != nil {
			node = m.Status.NodeRef.Name
			withMachine[node] = true
		}
		age := now.Sub(m.CreationTimestamp.Time)
		role := "machine"
		if cp {
			role = "control-plane machine"
		}
		say := func(s Severity, format string, args ...any) {
			r.Severity = Worse(r.Severity, s)
			r.Evidence = append(r.Evidence, fmt.Sprintf("%s %s: ", role, m.Name)+fmt.Sprintf(format, args...))
		}
		switch {
		case phase == "Failed":
			s := Warn
			if cp {
				s = Fail
				if node != "" {
					replace = append(replace, node)
				}
			}
			say(s, "Failed%s", machineError(m))
		case phase == "Provisioning" && age > machineStuck:
			say(Warn, "Provisioning for %s%s", roughly(age), machineError(m))
		case (phase == "Provisioned" || phase == "Running") && node == "" && age > machineStuck:
			s := Warn
			if cp {
				s = Fail
			}
			say(s, "%s for %s without a node", phase, roughly(age))
		case machineError(m) != "":
			say(Warn, "%s%s", phase, machineError(m))
		}
		if node != "" && !nodeNames[node] {
			say(Warn, "its node %s does not exist", node)
		}
	}
	for _, n := range nodes {
		if !withMachine[n.Name] {
			r.Severity = Worse(r.Severity, Warn)
			r.Evidence = append(r.Evidence, fmt.Sprintf("node %s: no Machine", n.Name))
		}
	}
	sort.Strings(r.Evidence)
	r.Summary = fmt.Sprintf("%d machines, %d nodes", len(machines), len(nodes))
	var fix []string
	sort.Strings(replace)
	for _, n := range replace {
		fix = append(fix, "`oc recover member replace "+n+"`")
	}
	if r.Severity != OK {
		fix = append(fix, "see why with `oc describe machine -n openshift-machine-api <name>`; a node the Machine API does not manage was added by hand, which a member replace cannot rebuild")
	}
	r.Fix = strings.Join(fix, "; ")
	return r
}

// machineError is ": <reason>: <message>" of a Machine's error, "" when
// it reports none.
func machineError(m *machinev1beta1.Machine) string {
	var parts []string
	if m.Status.ErrorReason != nil && *m.Status.ErrorReason != "" {
		parts = append(parts, string(*m.Status.ErrorReason))
	}
	if m.Status.ErrorMessage != nil && *m.Status.ErrorMessage != "" {
		parts = append(parts, oneLine(*m.Status.ErrorMessage))
	}
	if len(parts) == 0 {
		return ""
	}
	return ": " + strings.Join(parts, ": ")
}

// ControlPlaneMachineSet judges controlplanemachinesets/cluster (nil when
// there is none): FAIL when it counts unavailable control-plane machines,
// WARN while an Active one has machines left to update. An Inactive set is
// OK, said in the summary: it is how clusters installed before 4.12 come,
// and it only means the set does not replace control-plane machines by
// itself, so member replace does.
func ControlPlaneMachineSet(cpms *machinev1.ControlPlaneMachineSet) Result {
	r := Result{ID: "machines.cpms", Severity: OK}
	if cpms == nil {
		r.Summary = "no control-plane machine set"
		return r
	}
	st := cpms.Status
	state := cpms.Spec.State
	if state == "" {
		state = machinev1.ControlPlaneMachineSetStateInactive
	}
	r.Summary = fmt.Sprintf("%s: %d replicas, %d ready, %d updated, %d unavailable", state, st.Replicas, st.ReadyReplicas, st.UpdatedReplicas, st.UnavailableReplicas)
	if state == machinev1.ControlPlaneMachineSetStateInactive {
		r.Summary += " (Inactive: it does not replace control-plane machines; informational)"
	}
	if st.UnavailableReplicas > 0 {
		r.Severity = Fail
		r.Evidence = append(r.Evidence, fmt.Sprintf("%d control-plane machine(s) unavailable", st.UnavailableReplicas))
		r.Fix = "see the machines check and `oc get machines -n openshift-machine-api`; a control-plane machine lost for good: `oc recover member replace <node>`"
	}
	if state == machinev1.ControlPlaneMachineSetStateActive && st.UpdatedReplicas < st.Replicas {
		r.Severity = Worse(r.Severity, Warn)
		r.Evidence = append(r.Evidence, fmt.Sprintf("%d of %d control-plane machines not yet updated to the set's spec: a rollout replaces them one by one", st.Replicas-st.UpdatedReplicas, st.Replicas))
		if r.Fix == "" {
			r.Fix = "let the rollout finish before a backup or a member replace (`oc get controlplanemachineset -n openshift-machine-api cluster`)"
		}
	}
	return r
}

// MachineConfigPools judges the machine config pools: FAIL when one is
// Degraded, NodeDegraded or RenderDegraded, or counts degraded machines;
// WARN when one has been Updating for more than an hour, and when one is
// paused (a paused pool takes no machine config, the kubelet's new CA
// bundle included, so its nodes lose trust in the API once the old CA is
// gone).
func MachineConfigPools(pools []mcfgv1.MachineConfigPool, now time.Time) Result {
	r := Result{ID: "mcp", Severity: OK}
	settled := 0
	for _, p := range pools {
		st := p.Status
		counts := fmt.Sprintf("%d machines: %d updated, %d ready, %d degraded", st.MachineCount, st.UpdatedMachineCount, st.ReadyMachineCount, st.DegradedMachineCount)
		var problems []string
		severity := OK
		for _, c := range st.Conditions {
			if c.Status != corev1.ConditionTrue {
				continue
			}
			switch c.Type {
			case mcfgv1.MachineConfigPoolDegraded, mcfgv1.MachineConfigPoolNodeDegraded, mcfgv1.MachineConfigPoolRenderDegraded:
				severity = Fail
				problems = append(problems, string(c.Type)+detail(c.Message))
			case mcfgv1.MachineConfigPoolUpdating:
				if since := now.Sub(c.LastTransitionTime.Time); since > poolStuck {
					severity = Worse(severity, Warn)
					problems = append(problems, "Updating for "+roughly(since))
				}
			}
		}
		if st.DegradedMachineCount > 0 && severity != Fail {
			severity = Fail
			problems = append(problems, "degraded machines")
		}
		if p.Spec.Paused {
			severity = Worse(severity, Warn)
			problems = append(problems, "paused")
		}
		if len(problems) == 0 {
			settled++
			continue
		}
		sort.Strings(problems)
		r.Severity = Worse(r.Severity, severity)
		r.Evidence = append(r.Evidence, fmt.Sprintf("%s: %s (%s)", p.Name, strings.Join(problems, "; "), counts))
	}
	sort.Strings(r.Evidence)
	r.Summary = fmt.Sprintf("%d of %d machine config pools settled", settled, len(pools))
	if r.Severity != OK {
		r.Fix = "see `oc describe machineconfigpool <name>` and the degraded node's machine-config-daemon log (`oc logs -n openshift-machine-config-operator -c machine-config-daemon <pod>`); unpause a paused pool with `oc patch machineconfigpool <name> --type merge -p '{\"spec\":{\"paused\":false}}'`"
	}
	return r
}

// detail is ": <s>" on one line, "" when s is empty.
func detail(s string) string {
	if s = oneLine(s); s == "" {
		return ""
	}
	return ": " + s
}
