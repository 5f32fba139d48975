package member

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	machinev1beta1 "github.com/openshift/api/machine/v1beta1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/oc-recover/oc-recover/pkg/openshift"
)

func masterMachine(name, node string) *machinev1beta1.Machine {
	return &machinev1beta1.Machine{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: machineNamespace,
			Labels: map[string]string{"machine.openshift.io/cluster-api-machine-role": "master"}, ResourceVersion: "7"},
		Spec:   machinev1beta1.MachineSpec{ProviderID: ptr.To("aws:///i-" + name)},
		Status: machinev1beta1.MachineStatus{Phase: ptr.To("Running"), NodeRef: &corev1.ObjectReference{Name: node}},
	}
}

func readyNode(name string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{openshift.MasterLabel: ""}},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}}
}

// The planned replacement saves the stripped copy of the node's Machine in
// the record, under the next free name, before anything is deleted.
func TestPrepareMachineSavesTheCopyUnderTheNextName(t *testing.T) {
	f := newFakeCluster("")
	for i, node := range []string{"master-0", "master-1", "master-2"} {
		if _, err := f.machines.MachineV1beta1().Machines(machineNamespace).Create(context.Background(),
			masterMachine(fmt.Sprintf("c-master-%d", i), node), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	rec := &Record{Node: "master-1", Procedure: ProcedureMachine, Machine: "c-master-1"}
	if err := f.replacement(rec).prepareMachine(context.Background()); err != nil {
		t.Fatal(err)
	}
	if rec.NewMachine != "c-master-3" {
		t.Errorf("new machine %q, want c-master-3", rec.NewMachine)
	}
	saved := &machinev1beta1.Machine{}
	if err := json.Unmarshal(rec.Saved, saved); err != nil {
		t.Fatal(err)
	}
	if saved.Name != "c-master-3" || saved.Spec.ProviderID != nil || saved.ResourceVersion != "" || saved.Status.Phase != nil ||
		saved.Annotations[ReplacesNodeAnnotation] != "master-1" {
		t.Errorf("saved machine: %+v", saved)
	}
}

// Deleting the old Machine waits until it is gone; the step is then done,
// and running it again (a resumed run) is no error.
func TestDeleteOldMachine(t *testing.T) {
	ctx := context.Background()
	f := newFakeCluster("")
	if _, err := f.machines.MachineV1beta1().Machines(machineNamespace).Create(ctx, masterMachine("c-master-1", "master-1"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p := f.replacement(machineRecord(false))
	if gone, err := p.oldMachineGone(ctx); err != nil || gone {
		t.Fatalf("before: gone %v, %v", gone, err)
	}
	var out bytes.Buffer
	if err := p.deleteOldMachine(ctx, &out); err != nil {
		t.Fatal(err)
	}
	if gone, err := p.oldMachineGone(ctx); err != nil || !gone {
		t.Errorf("after: gone %v, %v; want gone", gone, err)
	}
	if want := "  waiting for machine c-master-1 to be deleted (the machine controller removes its instance and node)\n"; out.String() != want {
		t.Errorf("output %q, want %q", out.String(), want)
	}
	if err := p.deleteOldMachine(ctx, &bytes.Buffer{}); err != nil {
		t.Errorf("deleting again: %v", err)
	}
}

// The saved Machine is created and waited for until it runs with its node
// Ready. Here the fake machine controller brings it up on creation.
func TestCreateNewMachineWaitsForItsNodeReady(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second) // a wait that never ends fails
	defer cancel()
	f := newFakeCluster("", readyNode("master-3"))
	f.machines.PrependReactor("create", "machines", func(a k8stesting.Action) (bool, runtime.Object, error) {
		m := a.(k8stesting.CreateAction).GetObject().(*machinev1beta1.Machine)
		m.Status.Phase, m.Status.NodeRef = ptr.To("Running"), &corev1.ObjectReference{Name: "master-3"}
		return false, nil, nil
	})
	rec := machineRecord(false)
	saved, err := json.Marshal(StripMachine(masterMachine("c-master-1", "master-1"), "c-master-3", "master-1"))
	if err != nil {
		t.Fatal(err)
	}
	rec.Saved = saved
	p := f.replacement(rec)
	if ok, err := p.newMachineRunning(ctx); err != nil || ok {
		t.Fatalf("before: running %v, %v", ok, err)
	}
	var out bytes.Buffer
	if err := p.createNewMachine(ctx, &out); err != nil {
		t.Fatal(err)
	}
	if want := "  machine c-master-3 created\n  machine c-master-3: phase Running, node master-3 Ready=True\n"; out.String() != want {
		t.Errorf("output %q, want %q", out.String(), want)
	}
	if ok, err := p.newMachineRunning(ctx); err != nil || !ok {
		t.Errorf("after: running %v, %v; want running", ok, err)
	}
	m, err := f.machines.MachineV1beta1().Machines(machineNamespace).Get(ctx, "c-master-3", metav1.GetOptions{})
	if err != nil || m.Annotations[ReplacesNodeAnnotation] != "master-1" {
		t.Errorf("created machine: %v, %v", m, err)
	}
}

// A Machine of the new name that this replacement did not create is left
// alone, and the step refuses.
func TestCreateNewMachineRefusesAMachineItDidNotCreate(t *testing.T) {
	ctx := context.Background()
	f := newFakeCluster("", readyNode("master-3"))
	if _, err := f.machines.MachineV1beta1().Machines(machineNamespace).Create(ctx, masterMachine("c-master-3", "master-3"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rec := machineRecord(false)
	rec.Saved, _ = json.Marshal(StripMachine(masterMachine("c-master-1", "master-1"), "c-master-3", "master-1"))
	err := f.replacement(rec).createNewMachine(ctx, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "a machine c-master-3 exists that this replacement did not create") {
		t.Errorf("err = %v, want a refusal", err)
	}
}

func TestNextMachineName(t *testing.T) {
	cases := []struct {
		old      string
		existing []string
		want     string
	}{
		{"c-8qw5l-master-0", []string{"c-8qw5l-master-0", "c-8qw5l-master-1", "c-8qw5l-master-2", "c-8qw5l-worker-a-wbtgd"}, "c-8qw5l-master-3"},
		{"c-master-1", []string{"c-master-1", "c-master-2", "c-master-3"}, "c-master-4"},
		{"c-master-0", []string{"c-master-0", "c-master-5"}, "c-master-6"},
	}
	for _, c := range cases {
		got, err := NextMachineName(c.old, c.existing)
		if err != nil || got != c.want {
			t.Errorf("NextMachineName(%s) = %s, %v; want %s", c.old, got, err, c.want)
		}
	}
	if _, err := NextMachineName("master", nil); err == nil {
		t.Error("a name without an index was accepted")
	}
}

// The documentation's edit (OpenShift 4.5, Backup and restore, 2.4.1, step 3): status, providerID, annotations, generation,
// resourceVersion, uid and selfLink gone; name, labels and spec kept.
func TestStripMachine(t *testing.T) {
	old := &machinev1beta1.Machine{
		ObjectMeta: metav1.ObjectMeta{Name: "c-master-0", Namespace: "openshift-machine-api", Labels: map[string]string{"role": "master"},
			Annotations: map[string]string{"machine.openshift.io/instance-state": "stopped"}, Generation: 2, ResourceVersion: "13291",
			UID: "a282eb70", SelfLink: "/apis/x", Finalizers: []string{"machine.machine.openshift.io"}},
		Spec:   machinev1beta1.MachineSpec{ProviderID: ptr.To("aws:///i-0"), ProviderSpec: machinev1beta1.ProviderSpec{}},
		Status: machinev1beta1.MachineStatus{Phase: ptr.To("Running")},
	}
	m := StripMachine(old, "c-master-3", "master-0")
	if m.Name != "c-master-3" || m.Namespace != old.Namespace || !reflect.DeepEqual(m.Labels, old.Labels) {
		t.Errorf("identity: %+v", m.ObjectMeta)
	}
	if m.Spec.ProviderID != nil || m.Status.Phase != nil || m.Generation != 0 || m.ResourceVersion != "" || m.UID != "" || m.SelfLink != "" {
		t.Errorf("server fields kept: %+v", m)
	}
	if !reflect.DeepEqual(m.Annotations, map[string]string{ReplacesNodeAnnotation: "master-0"}) {
		t.Errorf("annotations = %v", m.Annotations)
	}
	if old.Spec.ProviderID == nil {
		t.Error("the old Machine was changed")
	}
}
