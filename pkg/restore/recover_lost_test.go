package restore

import (
	"context"
	"strings"
	"testing"

	machinev1beta1 "github.com/openshift/api/machine/v1beta1"
	operatorv1 "github.com/openshift/api/operator/v1"
	machinefake "github.com/openshift/client-go/machine/clientset/versioned/fake"
	operatorfake "github.com/openshift/client-go/operator/clientset/versioned/fake"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubefake "k8s.io/client-go/kubernetes/fake"
)

func masterMachine(name, node string) *machinev1beta1.Machine {
	return &machinev1beta1.Machine{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "openshift-machine-api",
			Labels: map[string]string{"machine.openshift.io/cluster-api-machine-role": "master"}},
		Status: machinev1beta1.MachineStatus{NodeRef: &corev1.ObjectReference{Name: node}},
	}
}

// When one lost node has no Machine, phase C refuses before any Machine is
// deleted: the other lost node's Machine is still there, and nothing is
// recorded that a re-run would take for a swap begun.
func TestReplaceLostRefusesBeforeDeletingWhenALostNodeHasNoMachine(t *testing.T) {
	ctx := context.Background()
	machines := machinefake.NewSimpleClientset(masterMachine("c-master-0", "master-0"), masterMachine("c-master-1", "master-1"))
	ops := operatorfake.NewSimpleClientset(&operatorv1.Etcd{ObjectMeta: metav1.ObjectMeta{Name: "cluster"}})
	c := Clients{Kube: kubefake.NewSimpleClientset(), Operator: ops, Machine: machines}
	rec := &Record{ID: "x", Lost: []string{"master-1", "master-2"}, NewNodes: map[string]string{}}
	err := replaceLost(ctx, c, rec, Events{})
	if err == nil || !strings.Contains(err.Error(), "control-plane node master-2 is lost and no Machine of the Machine API holds it") {
		t.Fatalf("err = %v, want the refusal naming master-2", err)
	}
	if _, err := machines.MachineV1beta1().Machines("openshift-machine-api").Get(ctx, "c-master-1", metav1.GetOptions{}); err != nil {
		t.Errorf("master-1's machine: %v; want it kept", err)
	}
	for _, a := range machines.Actions() {
		if a.GetVerb() == "delete" || a.GetVerb() == "create" {
			t.Errorf("machine %s %v", a.GetVerb(), a)
		}
	}
	// master-1's swap was planned, and recorded, before master-2 was found
	// without a Machine; its copy is under the next free name.
	if s := rec.swap("master-1"); s == nil || s.Machine != "c-master-1" || s.NewMachine != "c-master-2" {
		t.Errorf("master-1's swap: %+v", s)
	}
}

// Two lost nodes' copies get two names: the second is planned past the
// first, which does not exist yet.
func TestReplaceLostPlansEverySwapUnderItsOwnName(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the first wait ends at once (the fake deletes the first Machine, with any context)
	machines := machinefake.NewSimpleClientset(masterMachine("c-master-0", "master-0"), masterMachine("c-master-1", "master-1"), masterMachine("c-master-2", "master-2"))
	ops := operatorfake.NewSimpleClientset(&operatorv1.Etcd{ObjectMeta: metav1.ObjectMeta{Name: "cluster"}})
	c := Clients{Kube: kubefake.NewSimpleClientset(), Operator: ops, Machine: machines}
	rec := &Record{ID: "x", Lost: []string{"master-1", "master-2"}, NewNodes: map[string]string{}}
	_ = replaceLost(ctx, c, rec, Events{})
	s1, s2 := rec.swap("master-1"), rec.swap("master-2")
	if s1 == nil || s2 == nil || s1.NewMachine != "c-master-3" || s2.NewMachine != "c-master-4" {
		t.Errorf("swaps %+v, %+v; want c-master-3 and c-master-4", s1, s2)
	}
}
