package member

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strconv"

	machinev1beta1 "github.com/openshift/api/machine/v1beta1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/oc-recover/oc-recover/pkg/openshift"
	"github.com/oc-recover/oc-recover/pkg/runbook"
)

// The Machine API's side of the machine procedure (OpenShift 4.5
// documentation, Backup and restore, 2.4.1): the node's Machine saved,
// deleted, and created again under the next free name.

// prepareMachine saves the copy of the node's Machine that will replace it
// (OpenShift 4.5 documentation, Backup and restore, 2.4.1 "Replacing an
// unhealthy etcd member whose machine is not running or whose node is not
// ready", step 3): status, spec.providerID, annotations,
// generation, resourceVersion, uid and selfLink stripped, renamed to the
// next free index.
func (p *Replacement) prepareMachine(ctx context.Context) error {
	mc := p.c.Machine.MachineV1beta1().Machines(machineNamespace)
	old, err := mc.Get(ctx, p.Record.Machine, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("read machine %s: %w", p.Record.Machine, err)
	}
	all, err := mc.List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list machines: %w", err)
	}
	var names []string
	for _, m := range all.Items {
		names = append(names, m.Name)
	}
	newName, err := NextMachineName(old.Name, names)
	if err != nil {
		return err
	}
	saved := StripMachine(old, newName, p.opts.Node)
	data, err := json.Marshal(saved)
	if err != nil {
		return err
	}
	p.Record.NewMachine, p.Record.Saved = newName, data
	return nil
}

var machineIndex = regexp.MustCompile(`^(.*-)(\d+)$`)

// NextMachineName is old's name with the ending number changed to the next
// one no Machine uses (clustername-8qw5l-master-0 → ...-master-3).
func NextMachineName(old string, existing []string) (string, error) {
	m := machineIndex.FindStringSubmatch(old)
	if m == nil {
		return "", fmt.Errorf("machine name %s does not end in an index (-<n>); cannot choose the replacement's name", old)
	}
	prefix, next := m[1], 0
	for _, name := range append(existing, old) {
		if mm := machineIndex.FindStringSubmatch(name); mm != nil && mm[1] == prefix {
			if n, err := strconv.Atoi(mm[2]); err == nil && n >= next {
				next = n + 1
			}
		}
	}
	return fmt.Sprintf("%s%d", prefix, next), nil
}

// StripMachine is the documentation's edit of the saved Machine (2.4.1, step
// 3; see prepareMachine): everything the machine controller set for the old
// instance removed, a new name.
func StripMachine(old *machinev1beta1.Machine, newName, node string) *machinev1beta1.Machine {
	m := &machinev1beta1.Machine{
		TypeMeta: metav1.TypeMeta{APIVersion: "machine.openshift.io/v1beta1", Kind: "Machine"},
		ObjectMeta: metav1.ObjectMeta{
			Name:            newName,
			Namespace:       old.Namespace,
			Labels:          old.Labels,
			OwnerReferences: old.OwnerReferences,
			Annotations:     map[string]string{ReplacesNodeAnnotation: node},
		},
		Spec: *old.Spec.DeepCopy(),
	}
	m.Spec.ProviderID = nil
	return m
}

func (p *Replacement) deleteMachineStep() runbook.Step {
	r := p.Record
	return runbook.Step{
		Title: fmt.Sprintf("delete machine %s", r.Machine),
		Detail: []string{fmt.Sprintf("saved first as %s in the record: the old Machine without status, spec.providerID, annotations, generation, resourceVersion, uid, selfLink", r.NewMachine),
			fmt.Sprintf("delete machine -n %s %s; wait until it is gone", machineNamespace, r.Machine)},
		Done: p.oldMachineGone,
		Run:  p.deleteOldMachine,
	}
}

func (p *Replacement) createMachineStep() runbook.Step {
	r := p.Record
	return runbook.Step{
		Title:  fmt.Sprintf("create machine %s and wait for phase Running", r.NewMachine),
		Detail: []string{fmt.Sprintf("create machine -n %s %s (annotation %s=%s); wait for phase Running and its node Ready", machineNamespace, r.NewMachine, ReplacesNodeAnnotation, r.Node)},
		Done:   p.newMachineRunning,
		Run:    p.createNewMachine,
	}
}

func (p *Replacement) oldMachineGone(ctx context.Context) (bool, error) {
	_, err := p.c.Machine.MachineV1beta1().Machines(machineNamespace).Get(ctx, p.Record.Machine, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return true, nil
	}
	return false, err
}

func (p *Replacement) deleteOldMachine(ctx context.Context, out io.Writer) error {
	mc := p.c.Machine.MachineV1beta1().Machines(machineNamespace)
	err := mc.Delete(ctx, p.Record.Machine, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete machine %s: %w", p.Record.Machine, err)
	}
	fmt.Fprintf(out, "  waiting for machine %s to be deleted (the machine controller removes its instance and node)\n", p.Record.Machine)
	return p.poll(ctx, fmt.Sprintf("machine %s to be deleted", p.Record.Machine), func(ctx context.Context) (bool, string, error) {
		m, err := mc.Get(ctx, p.Record.Machine, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, "", nil
		}
		if err != nil {
			return false, err.Error(), nil
		}
		return false, "phase " + phase(m), nil
	})
}

func (p *Replacement) replacementNode(ctx context.Context) (string, error) {
	m, err := p.c.Machine.MachineV1beta1().Machines(machineNamespace).Get(ctx, p.Record.NewMachine, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	if m.Status.NodeRef == nil {
		return "", nil
	}
	return m.Status.NodeRef.Name, nil
}

func (p *Replacement) newMachineRunning(ctx context.Context) (bool, error) {
	m, err := p.c.Machine.MachineV1beta1().Machines(machineNamespace).Get(ctx, p.Record.NewMachine, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	ok, _, err := p.machineReady(ctx, m)
	return ok, err
}

func (p *Replacement) machineReady(ctx context.Context, m *machinev1beta1.Machine) (bool, string, error) {
	if phase(m) != "Running" || m.Status.NodeRef == nil {
		return false, "phase " + phase(m), nil
	}
	n, err := p.c.Kube.CoreV1().Nodes().Get(ctx, m.Status.NodeRef.Name, metav1.GetOptions{})
	if err != nil {
		return false, fmt.Sprintf("phase Running, node %s: %v", m.Status.NodeRef.Name, err), nil
	}
	ready := openshift.NodeReadyStatus(n)
	return ready == corev1.ConditionTrue, fmt.Sprintf("phase Running, node %s Ready=%s", n.Name, ready), nil
}

func (p *Replacement) createNewMachine(ctx context.Context, out io.Writer) error {
	mc := p.c.Machine.MachineV1beta1().Machines(machineNamespace)
	m := &machinev1beta1.Machine{}
	if err := json.Unmarshal(p.Record.Saved, m); err != nil {
		return fmt.Errorf("the saved machine in the record: %w", err)
	}
	if _, err := mc.Create(ctx, m, metav1.CreateOptions{}); err != nil {
		if !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create machine %s: %w", m.Name, err)
		}
		existing, gerr := mc.Get(ctx, m.Name, metav1.GetOptions{})
		if gerr != nil {
			return gerr
		}
		if existing.Annotations[ReplacesNodeAnnotation] != p.Record.Node {
			return fmt.Errorf("a machine %s exists that this replacement did not create (no %s=%s annotation); not touching it", m.Name, ReplacesNodeAnnotation, p.Record.Node)
		}
	} else {
		fmt.Fprintf(out, "  machine %s created\n", m.Name)
	}
	last := ""
	return p.poll(ctx, fmt.Sprintf("machine %s to reach phase Running with its node Ready", m.Name), func(ctx context.Context) (bool, string, error) {
		cur, err := mc.Get(ctx, m.Name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		ok, state, err := p.machineReady(ctx, cur)
		if state != last {
			fmt.Fprintf(out, "  machine %s: %s\n", m.Name, state)
			last = state
		}
		return ok, state, err
	})
}

func phase(m *machinev1beta1.Machine) string {
	if m.Status.Phase == nil || *m.Status.Phase == "" {
		return "(none yet)"
	}
	return *m.Status.Phase
}
