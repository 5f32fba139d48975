package power_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	configv1 "github.com/openshift/api/config/v1"
	configfake "github.com/openshift/client-go/config/clientset/versioned/fake"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/oc-recover/oc-recover/pkg/csr"
	"github.com/oc-recover/oc-recover/pkg/csr/csrtest"
	"github.com/oc-recover/oc-recover/pkg/era"
	"github.com/oc-recover/oc-recover/pkg/power"
)

var master0 = csrtest.Host{Name: "master-0", IP: net.ParseIP("10.0.0.10")}

func controlPlaneNode(h csrtest.Host, ready bool) *corev1.Node {
	n := h.Node(ready)
	delete(n.Labels, "node-role.kubernetes.io/worker")
	n.Labels["node-role.kubernetes.io/master"] = ""
	return &n
}

func operator(name string, available, degraded configv1.ConditionStatus) *configv1.ClusterOperator {
	return &configv1.ClusterOperator{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: configv1.ClusterOperatorStatus{
		Conditions: []configv1.ClusterOperatorStatusCondition{
			{Type: configv1.OperatorAvailable, Status: available},
			{Type: configv1.OperatorDegraded, Status: degraded, Message: name + " is degraded"},
		}}}
}

func clusterVersion(version string) *configv1.ClusterVersion {
	return &configv1.ClusterVersion{ObjectMeta: metav1.ObjectMeta{Name: "version"},
		Status: configv1.ClusterVersionStatus{History: []configv1.UpdateHistory{{State: configv1.CompletedUpdate, Version: version}}}}
}

func pendingCSR(c csrtest.Case, name string) *certificatesv1.CertificateSigningRequest {
	o := c.Object(name, time.Now().Add(-time.Minute))
	return &o
}

// restart is a cluster being started again, as the fake clientsets hold it,
// and what Startup told its callbacks.
type restart struct {
	kube      *fake.Clientset
	config    *configfake.Clientset
	startup   *power.Startup
	states    []power.Phase
	decisions []csr.Decision
	retried   []error
}

func newRestart(version string, kubeObjs []runtime.Object, cos ...runtime.Object) *restart {
	r := &restart{kube: fake.NewClientset(kubeObjs...), config: configfake.NewClientset(append(cos, clusterVersion(version))...)}
	r.startup = &power.Startup{
		Approver:   &csr.Approver{Kube: r.kube},
		Operators:  r.config,
		Era:        era.Clients{Kube: r.kube, OpenShiftConfig: r.config},
		Interval:   time.Millisecond,
		OnRetry:    func(err error) { r.retried = append(r.retried, err) },
		OnDecision: func(d csr.Decision) { r.decisions = append(r.decisions, d) },
		OnState:    func(st power.State, _ int) { r.states = append(r.states, st.Phase()) },
	}
	return r
}

func (r *restart) approvedOnServer(t *testing.T) []string {
	t.Helper()
	list, err := r.kube.CertificatesV1().CertificateSigningRequests().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range list.Items {
		if !csr.IsPending(&c) {
			out = append(out, c.Name)
		}
	}
	return out
}

func TestStartupApprovesUntilTheClusterIsUp(t *testing.T) {
	r := newRestart("4.14.3", []runtime.Object{controlPlaneNode(master0, false), pendingCSR(csrtest.Bootstrap(master0), "csr-1")},
		operator("etcd", configv1.ConditionTrue, configv1.ConditionFalse))
	// The kubelet, once it has its certificate, reports Ready.
	r.startup.OnState = func(st power.State, _ int) {
		r.states = append(r.states, st.Phase())
		if _, err := r.kube.CoreV1().Nodes().Update(context.Background(), controlPlaneNode(master0, true), metav1.UpdateOptions{}); err != nil {
			t.Error(err)
		}
	}
	rep, err := r.startup.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Phase != power.Started || rep.TimedOut || rep.Approved != 1 {
		t.Errorf("report: phase %s, timed out %v, approved %d; want started, not timed out, 1 approved", rep.Phase, rep.TimedOut, rep.Approved)
	}
	if len(rep.CSRs) != 1 || rep.CSRs[0].Name != "csr-1" || rep.CSRs[0].Outcome != csr.Approved {
		t.Errorf("report CSRs %+v, want csr-1 Approved", rep.CSRs)
	}
	if want := []power.Phase{power.WaitControlPlane, power.Started}; len(r.states) != 2 || r.states[0] != want[0] || r.states[1] != want[1] {
		t.Errorf("states told %v, want %v", r.states, want)
	}
	if len(r.decisions) != 1 || r.decisions[0].Outcome != csr.Approved {
		t.Errorf("decisions told %+v, want csr-1 approved, once", r.decisions)
	}
	if got := r.approvedOnServer(t); len(got) != 1 || got[0] != "csr-1" {
		t.Errorf("approved on the server: %v, want csr-1", got)
	}
}

func TestStartupTimesOutWithWhatIsLeft(t *testing.T) {
	// master-0 is Ready: a bootstrapper CSR for it would take it over.
	r := newRestart("4.14.3", []runtime.Object{controlPlaneNode(master0, true), pendingCSR(csrtest.Bootstrap(master0), "csr-takeover")},
		operator("etcd", configv1.ConditionTrue, configv1.ConditionFalse), operator("kube-apiserver", configv1.ConditionTrue, configv1.ConditionTrue))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	rep, err := r.startup.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Phase != power.WaitOperators || !rep.TimedOut || rep.OperatorsOK != 1 || rep.OperatorsTotal != 2 {
		t.Errorf("report: phase %s, timed out %v, operators %d of %d; want cluster operators, timed out, 1 of 2", rep.Phase, rep.TimedOut, rep.OperatorsOK, rep.OperatorsTotal)
	}
	if len(rep.Operators) != 1 || rep.Operators[0].Name != "kube-apiserver" || rep.Operators[0].Message != "kube-apiserver is degraded" {
		t.Errorf("operator problems %+v, want kube-apiserver with its Degraded message", rep.Operators)
	}
	if len(rep.CSRs) != 1 || rep.CSRs[0].Outcome != csr.Pending || rep.CSRs[0].Category != csr.NodeReady {
		t.Errorf("report CSRs %+v, want csr-takeover left pending as NodeReady", rep.CSRs)
	}
	if got := r.approvedOnServer(t); len(got) != 0 {
		t.Errorf("approved on the server: %v, want nothing", got)
	}
}

func TestStartupWaitsForTheAPI(t *testing.T) {
	r := newRestart("4.14.3", []runtime.Object{controlPlaneNode(master0, true)}, operator("etcd", configv1.ConditionTrue, configv1.ConditionFalse))
	down := errors.New("etcdserver: request timed out")
	failures := 2
	r.config.PrependReactor("list", "clusteroperators", func(k8stesting.Action) (bool, runtime.Object, error) {
		if failures > 0 {
			failures--
			return true, nil, down
		}
		return false, nil, nil
	})
	rep, err := r.startup.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Phase != power.Started {
		t.Errorf("phase %s, want started once the API answers", rep.Phase)
	}
	if len(r.retried) != 2 || !errors.Is(r.retried[0], down) {
		t.Errorf("retries told %v, want the two rounds the API failed", r.retried)
	}
}

func TestStartupDryRunJudgesOnceAndApprovesNothing(t *testing.T) {
	r := newRestart("4.14.3", []runtime.Object{controlPlaneNode(master0, false), pendingCSR(csrtest.Bootstrap(master0), "csr-1")},
		operator("etcd", configv1.ConditionTrue, configv1.ConditionFalse))
	r.startup.DryRun = true
	r.startup.Confirm = func([]csr.Decision) (bool, error) { t.Error("a dry run asked"); return true, nil }
	rep, err := r.startup.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !rep.DryRun || rep.TimedOut || rep.Phase != power.WaitControlPlane || rep.Approved != 1 {
		t.Errorf("report: dry run %v, timed out %v, phase %s, approved %d; want a dry run, not timed out, waiting for the control plane, 1 to approve",
			rep.DryRun, rep.TimedOut, rep.Phase, rep.Approved)
	}
	if len(rep.CSRs) != 1 || rep.CSRs[0].Outcome != csr.WouldApprove {
		t.Errorf("report CSRs %+v, want csr-1 WouldApprove", rep.CSRs)
	}
	if len(r.states) != 1 {
		t.Errorf("%d rounds, want one", len(r.states))
	}
	if got := r.approvedOnServer(t); len(got) != 0 {
		t.Errorf("a dry run approved %v", got)
	}
}

func TestStartupRefusesAndApprovesNothing(t *testing.T) {
	for name, tc := range map[string]struct {
		version string
		confirm func([]csr.Decision) (bool, error)
		is      func(error) bool
	}{
		"declined at the prompt": {version: "4.14.3", confirm: func([]csr.Decision) (bool, error) { return false, nil },
			is: func(err error) bool { return errors.Is(err, csr.ErrNotConfirmed) }},
		"an unsupported release": {version: "4.3.40", is: era.IsUnsupported},
	} {
		t.Run(name, func(t *testing.T) {
			r := newRestart(tc.version, []runtime.Object{controlPlaneNode(master0, false), pendingCSR(csrtest.Bootstrap(master0), "csr-1")},
				operator("etcd", configv1.ConditionTrue, configv1.ConditionFalse))
			r.startup.Confirm = tc.confirm
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			rep, err := r.startup.Run(ctx)
			if !tc.is(err) || rep != nil {
				t.Errorf("Run = %+v, %v; want no report and the refusal", rep, err)
			}
			if ctx.Err() != nil {
				t.Errorf("the refusal was retried until the deadline")
			}
			if got := r.approvedOnServer(t); len(got) != 0 {
				t.Errorf("approved on the server: %v, want nothing", got)
			}
		})
	}
}

// Also's conditions hold the run after the nodes are Ready and before the
// cluster operators count, and the post-outage rule reaches the rounds: a
// control-plane node that says Ready but whose kubelet stays silent counts
// as not Ready, and the bootstrapper's CSR for it is approved.
func TestStartupWaitsForAlsoAndAppliesThePostOutageRule(t *testing.T) {
	r := newRestart("4.14.3", []runtime.Object{controlPlaneNode(master0, true), pendingCSR(csrtest.Bootstrap(master0), "csr-1")},
		operator("kube-apiserver", configv1.ConditionTrue, configv1.ConditionFalse))
	now := time.Now()
	r.startup.PostOutage = &csr.PostOutage{Now: func() time.Time { return now }}
	rounds := 0
	r.startup.Also = func(context.Context) ([]power.Condition, error) {
		if rounds >= 3 {
			return nil, nil
		}
		return []power.Condition{{Object: "kubeapiserver/cluster", Type: "CertRotation_X_Degraded", Status: "True", Message: "expired"}}, nil
	}
	r.startup.OnState = func(st power.State, _ int) {
		rounds++
		r.states = append(r.states, st.Phase())
		now = now.Add(time.Minute)
		if rounds >= 2 { // approved: the kubelet talks again, a heartbeat a round
			n := controlPlaneNode(master0, true)
			n.Status.Conditions[0].LastHeartbeatTime = metav1.NewTime(now)
			if _, err := r.kube.CoreV1().Nodes().Update(context.Background(), n, metav1.UpdateOptions{}); err != nil {
				t.Error(err)
			}
		}
		if st.Phase() == power.WaitConditions {
			if want := "every node Ready; waiting for 1 condition(s) to clear: kubeapiserver/cluster CertRotation_X_Degraded"; st.Progress(0) != want {
				t.Errorf("progress %q, want %q", st.Progress(0), want)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rep, err := r.startup.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Round 1: Ready as far as anyone can tell; round 2: stale, the CSR
	// approved; then the kubelet talks, and the conditions clear.
	if fmt.Sprint(r.states) != "[conditions control-plane nodes conditions started]" {
		t.Errorf("phases %v", r.states)
	}
	if rep.Phase != power.Started || rep.Approved != 1 || rep.CSRs[0].Category != csr.Valid {
		t.Errorf("report: %+v", rep)
	}
}
