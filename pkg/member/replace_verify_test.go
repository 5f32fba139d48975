package member

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/oc-recover/oc-recover/pkg/etcd"
)

func runningEtcdPod(node string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: etcd.Namespace, Name: "etcd-" + node, Labels: map[string]string{"app": "etcd"}},
		Spec: corev1.PodSpec{NodeName: node},
		Status: corev1.PodStatus{Phase: corev1.PodRunning,
			ContainerStatuses: []corev1.ContainerStatus{{Name: "etcd", Ready: true}}}}
}

// The redeployment is needed while a control-plane node that should run
// etcd has no running etcd pod. The replaced node counts only when it
// stays (crashloop); a replaced Machine's old node does not.
func TestEtcdPodsDone(t *testing.T) {
	threeNodes := []runtime.Object{readyNode("master-0"), readyNode("master-1"), readyNode("master-2")}
	podsOn := func(nodes ...string) []runtime.Object {
		objs := append([]runtime.Object(nil), threeNodes...)
		for _, n := range nodes {
			objs = append(objs, runningEtcdPod(n))
		}
		return objs
	}
	cases := []struct {
		name      string
		procedure string
		objs      []runtime.Object
		want      bool
	}{
		{"machine: the old node has no pod", ProcedureMachine, podsOn("master-0", "master-2"), true},
		{"machine: another node has none", ProcedureMachine, podsOn("master-0", "master-1"), false},
		{"crashloop: the node itself has none yet", ProcedureCrashloop, podsOn("master-0", "master-2"), false},
		{"crashloop: every node has one", ProcedureCrashloop, podsOn("master-0", "master-1", "master-2"), true},
		{"no control-plane node at all", ProcedureCrashloop, nil, false},
	}
	for _, c := range cases {
		rec := machineRecord(false)
		rec.Procedure = c.procedure
		done, err := newFakeCluster("", c.objs...).replacement(rec).etcdPodsDone(context.Background())
		if err != nil || done != c.want {
			t.Errorf("%s: done %v, %v; want %v", c.name, done, err, c.want)
		}
	}
}

// The verification passes once every node that should run etcd has a
// healthy member; its progress line names each node's state.
func TestEveryNodeHealthy(t *testing.T) {
	yes, no := healthy(true), healthy(false)
	cases := []struct {
		name      string
		procedure string
		members   []Status
		want      bool
		summary   string
	}{
		{"machine: the old node left without a member", ProcedureMachine,
			[]Status{{Node: "master-0", MemberID: "a", Healthy: yes}, {Node: "master-1"}, {Node: "master-3", MemberID: "c", Healthy: yes}},
			true, "master-0: healthy, master-1: no member, master-3: healthy"},
		{"machine: the new node's member not healthy yet", ProcedureMachine,
			[]Status{{Node: "master-0", MemberID: "a", Healthy: yes}, {Node: "master-3", MemberID: "c", Healthy: no}},
			false, "master-0: healthy, master-3: member c not healthy yet"},
		{"crashloop: the node itself still without a member", ProcedureCrashloop,
			[]Status{{Node: "master-0", MemberID: "a", Healthy: yes}, {Node: "master-1"}},
			false, "master-0: healthy, master-1: no member"},
		{"no node at all", ProcedureCrashloop, nil, false, ""},
	}
	for _, c := range cases {
		rec := machineRecord(false)
		rec.Procedure = c.procedure
		p := newFakeCluster("").replacement(rec)
		r := &Report{Members: c.members}
		if got := p.everyNodeHealthy(r); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
		if got := summary(r); got != c.summary {
			t.Errorf("%s: summary %q, want %q", c.name, got, c.summary)
		}
	}
}
