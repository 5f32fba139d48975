package member

import (
	"bytes"
	"context"
	"slices"
	"testing"
	"time"

	operatorv1 "github.com/openshift/api/operator/v1"
	machinefake "github.com/openshift/client-go/machine/clientset/versioned/fake"
	operatorfake "github.com/openshift/client-go/operator/clientset/versioned/fake"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kubefake "k8s.io/client-go/kubernetes/fake"

	"github.com/oc-recover/oc-recover/pkg/runbook"
)

// The unit tests of the replacement's steps run each step's check and
// action against fake API clients, where what they decide depends on API
// objects alone. Steps that read etcd itself (member list, removal, health)
// are exercised on the cluster-in-a-box (test/e2e/member_replace_test.go).

// fakeCluster holds the fake API clients a replacement talks to.
type fakeCluster struct {
	kube     *kubefake.Clientset
	machines *machinefake.Clientset
	operator *operatorfake.Clientset
}

// newFakeCluster has etcd/cluster with spec.unsupportedConfigOverrides set
// to overrides (none when empty), and objs in the kube clientset.
func newFakeCluster(overrides string, objs ...runtime.Object) *fakeCluster {
	e := &operatorv1.Etcd{ObjectMeta: metav1.ObjectMeta{Name: "cluster"}}
	if overrides != "" {
		e.Spec.UnsupportedConfigOverrides = runtime.RawExtension{Raw: []byte(overrides)}
	}
	return &fakeCluster{kube: kubefake.NewSimpleClientset(objs...), machines: machinefake.NewSimpleClientset(), operator: operatorfake.NewSimpleClientset(e)}
}

func (f *fakeCluster) replacement(rec *Record) *Replacement {
	return &Replacement{Record: rec, c: ReplaceClients{Clients: Clients{Kube: f.kube, Machine: f.machines, Operator: f.operator}},
		opts: ReplaceOptions{Node: rec.Node, PollInterval: time.Millisecond}}
}

func (f *fakeCluster) etcdCluster(t *testing.T) *operatorv1.Etcd {
	t.Helper()
	e, err := f.operator.OperatorV1().Etcds().Get(context.Background(), "cluster", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func machineRecord(override bool) *Record {
	return &Record{Node: "master-1", MemberID: "8e9e05c52164694d", PeerURL: "https://10.0.0.2:2380", Procedure: ProcedureMachine,
		Started: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Override: override, Machine: "c-master-1", NewMachine: "c-master-3"}
}

func titles(steps []runbook.Step) []string {
	var out []string
	for _, s := range steps {
		out = append(out, s.Title)
	}
	return out
}

// Each procedure's steps, in order; the quorum guard is lifted only when
// the replacement needs it, before the Machine is replaced and after the
// other procedures' own steps.
func TestStepsOfEachProcedure(t *testing.T) {
	const (
		record   = "record the replacement on etcd/cluster"
		move     = "on master-1: stop the crashlooping etcd pod and move its data aside"
		remove   = "remove etcd member 8e9e05c52164694d (master-1)"
		secrets  = "delete the member's secrets"
		guard    = "lift the etcd quorum guard for the duration"
		del      = "delete machine c-master-1"
		create   = "create machine c-master-3 and wait for phase Running"
		newHost  = "a new control-plane host, created the way this one was (not managed by the Machine API)"
		redeploy = "force an etcd redeployment when a control-plane node has no etcd pod"
		verify   = "verify: one healthy member per control-plane node"
		finish   = "put the quorum guard back and remove the record"
	)
	cases := []struct {
		procedure string
		override  bool
		want      []string
	}{
		{ProcedureCrashloop, false, []string{record, move, remove, secrets, redeploy, verify, finish}},
		{ProcedureCrashloop, true, []string{record, move, remove, secrets, guard, redeploy, verify, finish}},
		{ProcedureMachine, false, []string{record, remove, secrets, del, create, redeploy, verify, finish}},
		{ProcedureMachine, true, []string{record, remove, secrets, guard, del, create, redeploy, verify, finish}},
		{ProcedureUPI, false, []string{record, remove, secrets, newHost, redeploy, verify, finish}},
		{ProcedureUPI, true, []string{record, remove, secrets, newHost, guard, redeploy, verify, finish}},
		{"from-a-newer-version", true, []string{record, guard, redeploy, verify, finish}},
	}
	for _, c := range cases {
		rec := machineRecord(c.override)
		rec.Procedure = c.procedure
		got := titles(newFakeCluster("").replacement(rec).steps())
		if !slices.Equal(got, c.want) {
			t.Errorf("%s, override %v:\n got %q\nwant %q", c.procedure, c.override, got, c.want)
		}
	}
}

// The plan as member replace prints it, before anything ran: every step
// with what it changes, none marked done (the record is not on
// etcd/cluster, so the first check already says "to do" and no later one
// is asked).
func TestPlanOfAMachineReplacement(t *testing.T) {
	p := newFakeCluster("").replacement(machineRecord(true))
	plan, err := p.Steps(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	runbook.Print(&out, true, "take a backup into /srv/etcd-backups (from a healthy control-plane node)", plan)
	want := `Plan (dry run, nothing changed):
  0. take a backup into /srv/etcd-backups (from a healthy control-plane node), and only then:
  1. record the replacement on etcd/cluster
       annotate etcd/cluster oc-recover/member-replace (member 8e9e05c52164694d, procedure machine; removed at the end)
  2. remove etcd member 8e9e05c52164694d (master-1)
       etcd member remove 8e9e05c52164694d (peer https://10.0.0.2:2380), through an etcd pod on another node
  3. delete the member's secrets
       delete secret -n openshift-etcd etcd-peer-master-1 etcd-serving-master-1 etcd-serving-metrics-master-1
  4. lift the etcd quorum guard for the duration
       merge-patch etcd/cluster {"spec":{"unsupportedConfigOverrides":{"useUnsupportedUnsafeNonHANonProductionUnstableEtcd":true}}} (put back as it was at the end)
  5. delete machine c-master-1
       saved first as c-master-3 in the record: the old Machine without status, spec.providerID, annotations, generation, resourceVersion, uid, selfLink
       delete machine -n openshift-machine-api c-master-1; wait until it is gone
  6. create machine c-master-3 and wait for phase Running
       create machine -n openshift-machine-api c-master-3 (annotation oc-recover/replaces-node=master-1); wait for phase Running and its node Ready
  7. force an etcd redeployment when a control-plane node has no etcd pod
       merge-patch etcd/cluster {"spec":{"forceRedeploymentReason":"recovery-<time>"}}; wait until every node runs the new revision
  8. verify: one healthy member per control-plane node
       etcdctl member list and endpoint health, through an etcd pod
  9. put the quorum guard back and remove the record
       merge-patch etcd/cluster spec.unsupportedConfigOverrides back to what it was; remove annotation oc-recover/member-replace
`
	if out.String() != want {
		t.Errorf("plan:\n%s\nwant:\n%s", out.String(), want)
	}
}

// The record step is done once etcd/cluster carries the record, and its
// action writes the record that a re-run reads back.
func TestRecordStepWritesTheRecordARerunReads(t *testing.T) {
	ctx := context.Background()
	f := newFakeCluster("")
	rec := machineRecord(true)
	rec.Saved = []byte(`{"kind":"Machine"}`)
	s := f.replacement(rec).recordStep()
	if done, err := s.Done(ctx); err != nil || done {
		t.Fatalf("before: done %v, %v; want not done", done, err)
	}
	if err := s.Run(ctx, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if done, err := s.Done(ctx); err != nil || !done {
		t.Fatalf("after: done %v, %v; want done", done, err)
	}
	got, err := ReadRecord(ctx, f.operator)
	if err != nil {
		t.Fatal(err)
	}
	if got.Node != rec.Node || got.MemberID != rec.MemberID || got.Procedure != rec.Procedure || !got.Started.Equal(rec.Started) ||
		got.Machine != rec.Machine || got.NewMachine != rec.NewMachine || string(got.Saved) != string(rec.Saved) || !got.Override {
		t.Errorf("read back %+v, want %+v", got, rec)
	}
}
