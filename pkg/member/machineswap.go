package member

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strconv"

	machinev1beta1 "github.com/openshift/api/machine/v1beta1"
	machineclient "github.com/openshift/client-go/machine/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/oc-recover/oc-recover/pkg/openshift"
	"github.com/oc-recover/oc-recover/pkg/runbook"
)

// The Machine API's side of the machine procedure (OpenShift 4.5
// documentation, Backup and restore, 2.4.1): the node's Machine saved,
// deleted, and created again under the next free name. A restore whose
// control-plane hosts are lost replaces their Machines the same way
// ("Restoring to a previous cluster state": delete and recreate the
// machines), so the steps are a MachineSwap of their own.

// MachineSwap replaces Node's Machine with a copy of it, NewMachine, saved
// in Saved before the old one is deleted: a caller keeps it in its record,
// so that a crash between the delete and the create loses nothing.
type MachineSwap struct {
	Node       string          `json:"node"`
	Machine    string          `json:"machine"`
	NewMachine string          `json:"newMachine"`
	Saved      json.RawMessage `json:"savedMachine"`
}

// MachineOfNode is the name of the control-plane Machine whose nodeRef is
// node, "" when no Machine holds it.
func MachineOfNode(ctx context.Context, mc machineclient.Interface, node string) (string, error) {
	machines, err := mc.MachineV1beta1().Machines(machineNamespace).List(ctx, metav1.ListOptions{LabelSelector: masterMachineSelect})
	switch {
	case apierrors.IsNotFound(err):
		return "", nil // no Machine API
	case err != nil:
		return "", fmt.Errorf("list machines: %w", err)
	}
	for _, m := range machines.Items {
		if m.Status.NodeRef != nil && m.Status.NodeRef.Name == node && m.DeletionTimestamp == nil {
			return m.Name, nil
		}
	}
	return "", nil
}

// PlanMachineSwap saves the copy of the node's Machine that will replace it
// (OpenShift 4.5 documentation, Backup and restore, 2.4.1 "Replacing an
// unhealthy etcd member whose machine is not running or whose node is not
// ready", step 3): status, spec.providerID, annotations, generation,
// resourceVersion, uid and selfLink stripped, renamed to the next free
// index, which neither a Machine nor taken (the copies of swaps planned
// before, not created yet) has. It changes nothing.
func PlanMachineSwap(ctx context.Context, mc machineclient.Interface, node, machine string, taken ...string) (*MachineSwap, error) {
	machines := mc.MachineV1beta1().Machines(machineNamespace)
	old, err := machines.Get(ctx, machine, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("read machine %s: %w", machine, err)
	}
	all, err := machines.List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list machines: %w", err)
	}
	names := append([]string(nil), taken...)
	for _, m := range all.Items {
		names = append(names, m.Name)
	}
	newName, err := NextMachineName(old.Name, names)
	if err != nil {
		return nil, err
	}
	data, err := json.Marshal(StripMachine(old, newName, node))
	if err != nil {
		return nil, err
	}
	return &MachineSwap{Node: node, Machine: machine, NewMachine: newName, Saved: data}, nil
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
// 3; see PlanMachineSwap): everything the machine controller set for the old
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

// DeleteStep deletes the old Machine and waits until it is gone.
func (s *MachineSwap) DeleteStep(mc machineclient.Interface, poll Poll) runbook.Step {
	return runbook.Step{
		Title: fmt.Sprintf("delete machine %s", s.Machine),
		Detail: []string{fmt.Sprintf("saved first as %s in the record: the old Machine without status, spec.providerID, annotations, generation, resourceVersion, uid, selfLink", s.NewMachine),
			fmt.Sprintf("delete machine -n %s %s; wait until it is gone", machineNamespace, s.Machine)},
		Done: func(ctx context.Context) (bool, error) { return s.OldGone(ctx, mc) },
		Run:  func(ctx context.Context, out io.Writer) error { return s.DeleteOld(ctx, mc, poll, out) },
	}
}

// CreateStep creates the saved Machine and waits until it runs with its
// node Ready.
func (s *MachineSwap) CreateStep(kube kubernetes.Interface, mc machineclient.Interface, poll Poll) runbook.Step {
	return runbook.Step{
		Title:  fmt.Sprintf("create machine %s and wait for phase Running", s.NewMachine),
		Detail: []string{fmt.Sprintf("create machine -n %s %s (annotation %s=%s); wait for phase Running and its node Ready", machineNamespace, s.NewMachine, ReplacesNodeAnnotation, s.Node)},
		Done:   func(ctx context.Context) (bool, error) { return s.NewRunning(ctx, kube, mc) },
		Run:    func(ctx context.Context, out io.Writer) error { return s.CreateNew(ctx, kube, mc, poll, out) },
	}
}

// OldGone: the old Machine is deleted.
func (s *MachineSwap) OldGone(ctx context.Context, mc machineclient.Interface) (bool, error) {
	_, err := mc.MachineV1beta1().Machines(machineNamespace).Get(ctx, s.Machine, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return true, nil
	}
	return false, err
}

// DeleteOld deletes the old Machine and waits until the machine controller
// has removed it.
func (s *MachineSwap) DeleteOld(ctx context.Context, mc machineclient.Interface, poll Poll, out io.Writer) error {
	machines := mc.MachineV1beta1().Machines(machineNamespace)
	err := machines.Delete(ctx, s.Machine, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete machine %s: %w", s.Machine, err)
	}
	fmt.Fprintf(out, "  waiting for machine %s to be deleted (the machine controller removes its instance and node)\n", s.Machine)
	return poll(ctx, fmt.Sprintf("machine %s to be deleted", s.Machine), func(ctx context.Context) (bool, string, error) {
		m, err := machines.Get(ctx, s.Machine, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, "", nil
		}
		if err != nil {
			return false, err.Error(), nil
		}
		return false, "phase " + phase(m), nil
	})
}

// NewNode is the node of the new Machine, "" until it has one.
func (s *MachineSwap) NewNode(ctx context.Context, mc machineclient.Interface) (string, error) {
	m, err := mc.MachineV1beta1().Machines(machineNamespace).Get(ctx, s.NewMachine, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	if m.Status.NodeRef == nil {
		return "", nil
	}
	return m.Status.NodeRef.Name, nil
}

// NewRunning: the new Machine runs, with its node Ready.
func (s *MachineSwap) NewRunning(ctx context.Context, kube kubernetes.Interface, mc machineclient.Interface) (bool, error) {
	m, err := mc.MachineV1beta1().Machines(machineNamespace).Get(ctx, s.NewMachine, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	ok, _, err := machineReady(ctx, kube, m)
	return ok, err
}

func machineReady(ctx context.Context, kube kubernetes.Interface, m *machinev1beta1.Machine) (bool, string, error) {
	if phase(m) != "Running" || m.Status.NodeRef == nil {
		return false, "phase " + phase(m), nil
	}
	n, err := kube.CoreV1().Nodes().Get(ctx, m.Status.NodeRef.Name, metav1.GetOptions{})
	if err != nil {
		return false, fmt.Sprintf("phase Running, node %s: %v", m.Status.NodeRef.Name, err), nil
	}
	ready := openshift.NodeReadyStatus(n)
	return ready == corev1.ConditionTrue, fmt.Sprintf("phase Running, node %s Ready=%s", n.Name, ready), nil
}

// CreateNew creates the saved Machine (one of its name that this swap
// created already is taken as it is) and waits until it runs with its node
// Ready.
func (s *MachineSwap) CreateNew(ctx context.Context, kube kubernetes.Interface, mc machineclient.Interface, poll Poll, out io.Writer) error {
	machines := mc.MachineV1beta1().Machines(machineNamespace)
	m := &machinev1beta1.Machine{}
	if err := json.Unmarshal(s.Saved, m); err != nil {
		return fmt.Errorf("the saved machine in the record: %w", err)
	}
	if _, err := machines.Create(ctx, m, metav1.CreateOptions{}); err != nil {
		if !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create machine %s: %w", m.Name, err)
		}
		existing, gerr := machines.Get(ctx, m.Name, metav1.GetOptions{})
		if gerr != nil {
			return gerr
		}
		if existing.Annotations[ReplacesNodeAnnotation] != s.Node {
			return fmt.Errorf("a machine %s exists that this replacement did not create (no %s=%s annotation); not touching it", m.Name, ReplacesNodeAnnotation, s.Node)
		}
	} else {
		fmt.Fprintf(out, "  machine %s created\n", m.Name)
	}
	last := ""
	return poll(ctx, fmt.Sprintf("machine %s to reach phase Running with its node Ready", m.Name), func(ctx context.Context) (bool, string, error) {
		cur, err := machines.Get(ctx, m.Name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		ok, state, err := machineReady(ctx, kube, cur)
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
