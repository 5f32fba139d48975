package health

import (
	"strings"
	"testing"
	"time"

	machinev1 "github.com/openshift/api/machine/v1"
	machinev1beta1 "github.com/openshift/api/machine/v1beta1"
	mcfgv1 "github.com/openshift/api/machineconfiguration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// machine is a Machine created age ago, in phase, with a nodeRef to node
// unless node is "".
func machine(name, role, phase, node string, age time.Duration) machinev1beta1.Machine {
	m := machinev1beta1.Machine{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "openshift-machine-api",
		Labels: map[string]string{MachineRoleLabel: role}, CreationTimestamp: metav1.NewTime(now.Add(-age))}}
	m.Status.Phase = &phase
	if node != "" {
		m.Status.NodeRef = &corev1.ObjectReference{Kind: "Node", Name: node}
	}
	return m
}

func TestMachines(t *testing.T) {
	nodes := []corev1.Node{node("master-0", true, corev1.ConditionTrue, 0), node("master-1", true, corev1.ConditionTrue, 0), node("worker-0", false, corev1.ConditionTrue, 0)}
	base := []machinev1beta1.Machine{machine("m-master-0", "master", "Running", "master-0", 48*time.Hour), machine("m-worker-0", "worker", "Running", "worker-0", 48*time.Hour)}
	failed := machine("m-master-1", "master", "Failed", "master-1", 48*time.Hour)
	reason, msg := machinev1beta1.MachineStatusError("InvalidConfiguration"), "instance type\n unknown"
	failed.Status.ErrorReason, failed.Status.ErrorMessage = &reason, &msg
	errored := machine("m-master-1", "master", "Running", "master-1", 48*time.Hour)
	errored.Status.ErrorMessage = &msg
	for _, tc := range []struct {
		name     string
		m        machinev1beta1.Machine
		severity Severity
		evidence string
		fix      string
	}{
		{"all Running with nodes", machine("m-master-1", "master", "Running", "master-1", 48*time.Hour), OK, "", ""},
		{"a failed control-plane machine", failed, Fail, "control-plane machine m-master-1: Failed: InvalidConfiguration: instance type unknown", "`oc recover member replace master-1`"},
		{"a control-plane machine Running 31 minutes without a node", machine("m-master-1", "master", "Running", "", 31*time.Minute), Fail,
			"control-plane machine m-master-1: Running for 31m without a node\nnode master-1: no Machine", "oc describe machine"},
		{"a control-plane machine Provisioned 29 minutes without a node", machine("m-master-1", "master", "Provisioned", "", 29*time.Minute), Warn, "node master-1: no Machine", "oc describe machine"},
		{"a worker Provisioning 31 minutes", machine("m-worker-1", "worker", "Provisioning", "", 31*time.Minute), Warn,
			"machine m-worker-1: Provisioning for 31m\nnode master-1: no Machine", "oc describe machine"},
		{"a machine reporting an error", errored, Warn, "control-plane machine m-master-1: Running: instance type unknown", "oc describe machine"},
		{"a failed worker", machine("m-worker-1", "worker", "Failed", "", time.Hour), Warn, "machine m-worker-1: Failed\nnode master-1: no Machine", "oc describe machine"},
		{"a machine whose node is gone", machine("m-master-1", "master", "Running", "master-9", 48*time.Hour), Warn,
			"control-plane machine m-master-1: its node master-9 does not exist\nnode master-1: no Machine", "oc describe machine"},
	} {
		r := Machines(append(append([]machinev1beta1.Machine{}, base...), tc.m), nodes, now)
		if r.Severity != tc.severity || evidence(r) != tc.evidence || !strings.Contains(r.Fix, tc.fix) || (tc.fix == "") != (r.Fix == "") {
			t.Errorf("%s: %+v, want %s with %q, fix %q", tc.name, r, tc.severity, tc.evidence, tc.fix)
		}
	}
	if r := Machines(nil, nodes, now); r.Severity != OK || !strings.Contains(r.Summary, "no Machine API objects") {
		t.Errorf("user-provisioned: %+v", r)
	}
}

func TestControlPlaneMachineSet(t *testing.T) {
	cpms := func(state machinev1.ControlPlaneMachineSetState, replicas, updated, unavailable int32) *machinev1.ControlPlaneMachineSet {
		c := &machinev1.ControlPlaneMachineSet{}
		c.Spec.State = state
		c.Status = machinev1.ControlPlaneMachineSetStatus{Replicas: replicas, ReadyReplicas: replicas - unavailable, UpdatedReplicas: updated, UnavailableReplicas: unavailable}
		return c
	}
	for _, tc := range []struct {
		name     string
		c        *machinev1.ControlPlaneMachineSet
		severity Severity
		summary  string
	}{
		{"none", nil, OK, "no control-plane machine set"},
		{"active and settled", cpms(machinev1.ControlPlaneMachineSetStateActive, 3, 3, 0), OK, "Active: 3 replicas, 3 ready, 3 updated, 0 unavailable"},
		{"inactive", cpms(machinev1.ControlPlaneMachineSetStateInactive, 3, 0, 0), OK, "informational"},
		{"active, rolling out", cpms(machinev1.ControlPlaneMachineSetStateActive, 3, 2, 0), Warn, "2 updated"},
		{"a machine unavailable", cpms(machinev1.ControlPlaneMachineSetStateInactive, 3, 3, 1), Fail, "1 unavailable"},
	} {
		r := ControlPlaneMachineSet(tc.c)
		if r.ID != "machines.cpms" || r.Severity != tc.severity || !strings.Contains(r.Summary, tc.summary) || (r.Severity == OK) != (r.Fix == "") {
			t.Errorf("%s: %+v, want %s with %q", tc.name, r, tc.severity, tc.summary)
		}
	}
}

func pool(name string, machines, updated, degraded int32, paused bool, conds ...mcfgv1.MachineConfigPoolCondition) mcfgv1.MachineConfigPool {
	p := mcfgv1.MachineConfigPool{ObjectMeta: metav1.ObjectMeta{Name: name}}
	p.Spec.Paused = paused
	p.Status = mcfgv1.MachineConfigPoolStatus{MachineCount: machines, UpdatedMachineCount: updated, ReadyMachineCount: updated, DegradedMachineCount: degraded, Conditions: conds}
	return p
}

func poolCond(t mcfgv1.MachineConfigPoolConditionType, since time.Duration, msg string) mcfgv1.MachineConfigPoolCondition {
	return mcfgv1.MachineConfigPoolCondition{Type: t, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(now.Add(-since)), Message: msg}
}

func TestMachineConfigPools(t *testing.T) {
	master := pool("master", 3, 3, 0, false, poolCond(mcfgv1.MachineConfigPoolUpdated, time.Hour, ""))
	for _, tc := range []struct {
		name     string
		p        mcfgv1.MachineConfigPool
		severity Severity
		evidence string
	}{
		{"updated", pool("worker", 2, 2, 0, false, poolCond(mcfgv1.MachineConfigPoolUpdated, time.Hour, "")), OK, ""},
		{"updating 59 minutes", pool("worker", 2, 1, 0, false, poolCond(mcfgv1.MachineConfigPoolUpdating, 59*time.Minute, "")), OK, ""},
		{"updating 61 minutes", pool("worker", 2, 1, 0, false, poolCond(mcfgv1.MachineConfigPoolUpdating, 61*time.Minute, "")), Warn,
			"worker: Updating for 1h (2 machines: 1 updated, 1 ready, 0 degraded)"},
		{"degraded", pool("worker", 2, 1, 1, false, poolCond(mcfgv1.MachineConfigPoolDegraded, time.Minute, "1 nodes are reporting degraded status"),
			poolCond(mcfgv1.MachineConfigPoolNodeDegraded, time.Minute, "Node worker-1 is reporting: \"unexpected on-disk state\"")), Fail,
			"worker: Degraded: 1 nodes are reporting degraded status; NodeDegraded: Node worker-1 is reporting: \"unexpected on-disk state\" (2 machines: 1 updated, 1 ready, 1 degraded)"},
		{"render degraded", pool("worker", 2, 2, 0, false, poolCond(mcfgv1.MachineConfigPoolRenderDegraded, time.Minute, "")), Fail, "worker: RenderDegraded (2 machines"},
		{"degraded machines counted only", pool("worker", 2, 1, 1, false), Fail, "worker: degraded machines (2 machines"},
		{"paused", pool("worker", 2, 2, 0, true), Warn, "worker: paused (2 machines"},
	} {
		r := MachineConfigPools([]mcfgv1.MachineConfigPool{master, tc.p}, now)
		if r.Severity != tc.severity || !strings.HasPrefix(evidence(r), tc.evidence) || (tc.evidence == "") != (len(r.Evidence) == 0) || (r.Severity == OK) != (r.Fix == "") {
			t.Errorf("%s: %+v, want %s with %q", tc.name, r, tc.severity, tc.evidence)
		}
	}
}
