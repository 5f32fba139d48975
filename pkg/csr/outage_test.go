package csr_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/oc-recover/oc-recover/pkg/csr"
	"github.com/oc-recover/oc-recover/pkg/csr/csrtest"
)

var outageHost = csrtest.Host{Name: "master-1", IP: net.ParseIP("10.0.0.11")}

// clock is a settable clock for PostOutage.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *clock                   { return &clock{t: time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)} }
func lease(name string, renew time.Time, seconds int32) coordinationv1.Lease {
	holder := name
	l := coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: csr.NodeLeaseNamespace},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder, RenewTime: &metav1.MicroTime{Time: renew}}}
	if seconds > 0 {
		l.Spec.LeaseDurationSeconds = &seconds
	}
	return l
}

// readyNode is outageHost's node, Ready with a heartbeat from before the
// outage.
func readyNode(heartbeat time.Time) corev1.Node {
	n := outageHost.Node(true)
	n.Status.Conditions[0].LastHeartbeatTime = metav1.NewTime(heartbeat)
	return n
}

func readyStatus(n corev1.Node) (corev1.ConditionStatus, string) {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status, c.Reason
		}
	}
	return "", ""
}

// A Ready node whose kubelet renews its lease is never stale; one whose
// lease stops changing is stale once this run has watched it for longer
// than the lease's duration, not a moment before, and counts as not Ready
// in the copy (the nodes read are left as they were).
func TestPostOutageWatchesTheLease(t *testing.T) {
	c := newClock()
	p := &csr.PostOutage{Now: c.now}
	outage := c.t.Add(-72 * time.Hour)
	nodes := []corev1.Node{readyNode(outage)}
	renewed := lease(outageHost.Name, outage, 40)

	for i := 0; i < 10; i++ { // a live kubelet: renewed every 10 s
		live := lease(outageHost.Name, c.t, 40)
		out, stale := p.Apply(nodes, []coordinationv1.Lease{live})
		if status, _ := readyStatus(out[0]); len(stale) != 0 || status != corev1.ConditionTrue {
			t.Fatalf("round %d: a renewing kubelet counted stale: %v", i, stale)
		}
		c.advance(10 * time.Second)
	}

	p = &csr.PostOutage{Now: c.now}
	for _, step := range []struct {
		after time.Duration
		stale bool
	}{{0, false}, {20 * time.Second, false}, {20 * time.Second, false}, {time.Second, true}, {time.Minute, true}} {
		c.advance(step.after)
		out, stale := p.Apply(nodes, []coordinationv1.Lease{renewed})
		if got := stale[outageHost.Name] != ""; got != step.stale {
			t.Fatalf("after %s more: stale %v, want %v", step.after, got, step.stale)
		}
		status, reason := readyStatus(out[0])
		if step.stale && (status != corev1.ConditionUnknown || reason != csr.StaleReason) {
			t.Errorf("a stale node's copy says Ready=%s (%s)", status, reason)
		}
		if !step.stale && status != corev1.ConditionTrue {
			t.Errorf("a node not yet stale says Ready=%s", status)
		}
	}
	if status, _ := readyStatus(nodes[0]); status != corev1.ConditionTrue {
		t.Errorf("Apply changed the nodes it was given: Ready=%s", status)
	}
	_, stale := p.Apply(nodes, []coordinationv1.Lease{renewed})
	for _, want := range []string{"its Ready=True is stale", "kube-node-lease/master-1", "longer than the lease's 40s", "last Ready heartbeat " + outage.Format(time.RFC3339)} {
		if !strings.Contains(stale[outageHost.Name], want) {
			t.Errorf("the reason lacks %q: %s", want, stale[outageHost.Name])
		}
	}

	// The kubelet is back: a renewal is a sign of life, and the watch
	// starts again.
	c.advance(time.Second)
	if _, stale := p.Apply(nodes, []coordinationv1.Lease{lease(outageHost.Name, c.t, 40)}); len(stale) != 0 {
		t.Errorf("a renewed lease still counted stale: %v", stale)
	}
}

// The grace is the lease's own duration; a node without a lease waits
// DefaultNodeGrace; a new heartbeat is a sign of life too; a node that is
// not Ready is left alone; a node that is gone is forgotten.
func TestPostOutageGraceAndSigns(t *testing.T) {
	c := newClock()
	p := &csr.PostOutage{Now: c.now}
	old := c.t.Add(-time.Hour)
	short := []coordinationv1.Lease{lease(outageHost.Name, old, 4)}
	nodes := []corev1.Node{readyNode(old)}
	p.Apply(nodes, short)
	c.advance(5 * time.Second)
	if _, stale := p.Apply(nodes, short); stale[outageHost.Name] == "" || !strings.Contains(stale[outageHost.Name], "the lease's 4s") {
		t.Errorf("a 4 s lease silent for 5 s: %v", stale)
	}

	p = &csr.PostOutage{Now: c.now}
	p.Apply(nodes, nil)
	c.advance(csr.DefaultNodeGrace)
	if _, stale := p.Apply(nodes, nil); len(stale) != 0 {
		t.Errorf("stale after exactly the grace: %v", stale)
	}
	c.advance(time.Second)
	if _, stale := p.Apply(nodes, nil); !strings.Contains(stale[outageHost.Name], "has not created its lease kube-node-lease/master-1") {
		t.Errorf("no lease for longer than the grace: %v", stale)
	}

	p = &csr.PostOutage{Now: c.now}
	p.Apply(nodes, short)
	c.advance(3 * time.Second)
	beat := []corev1.Node{readyNode(c.t)}
	p.Apply(beat, short)
	c.advance(3 * time.Second)
	if _, stale := p.Apply(beat, short); len(stale) != 0 {
		t.Errorf("a new heartbeat 3 s ago with a 4 s lease: %v", stale)
	}

	notReady := []corev1.Node{outageHost.Node(false)}
	p = &csr.PostOutage{Now: c.now}
	p.Apply(notReady, short)
	c.advance(time.Hour)
	out, stale := p.Apply(notReady, short)
	if status, reason := readyStatus(out[0]); len(stale) != 0 || status != corev1.ConditionUnknown || reason == csr.StaleReason {
		t.Errorf("a node not Ready: stale %v, Ready=%s (%s)", stale, status, reason)
	}

	// Gone, then back: watched afresh.
	p = &csr.PostOutage{Now: c.now}
	p.Apply(nodes, short)
	c.advance(time.Hour)
	p.Apply(nil, short)
	if _, stale := p.Apply(nodes, short); len(stale) != 0 {
		t.Errorf("a node seen again after it was gone: %v", stale)
	}
}

// Through Rounds: the bootstrapper's CSR for a node that still says Ready
// is refused at first (a takeover, as far as anyone can tell), and approved
// once the node's kubelet has stayed silent for longer than its lease, with
// the reason. When the leases cannot be read, no node is stale.
func TestRoundsApplyThePostOutageRule(t *testing.T) {
	c := newClock()
	node := readyNode(c.t.Add(-72 * time.Hour))
	l := lease(outageHost.Name, c.t.Add(-72*time.Hour), 40)
	boot := csrObject(csrtest.Bootstrap(outageHost), "csr-boot")
	kube := fake.NewClientset(&node, &l)
	if _, err := kube.CertificatesV1().CertificateSigningRequests().Create(context.Background(), &boot, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	r := &csr.Rounds{Approver: &csr.Approver{Kube: kube}, PostOutage: &csr.PostOutage{Now: c.now}}
	ctx := context.Background()
	_, ds, err := r.Once(ctx)
	if err != nil || len(ds) != 1 || ds[0].Approve || ds[0].Category != csr.NodeReady {
		t.Fatalf("first round: %v %+v", err, ds)
	}
	c.advance(41 * time.Second)
	snap, ds, err := r.Once(ctx)
	if err != nil || len(ds) != 1 || ds[0].Outcome != csr.Approved || ds[0].Category != csr.Valid {
		t.Fatalf("after 41 s of a silent lease: %v %+v", err, ds)
	}
	if !strings.Contains(ds[0].Reason, "exists and is not Ready (its Ready=True is stale: its kubelet has not renewed its lease") || snap.Stale[outageHost.Name] == "" {
		t.Errorf("reason %q, stale %v", ds[0].Reason, snap.Stale)
	}

	// Leases unreadable: the rule does not apply.
	kube = fake.NewClientset(&node, &l)
	boot.ResourceVersion = ""
	if _, err := kube.CertificatesV1().CertificateSigningRequests().Create(ctx, &boot, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kube.PrependReactor("list", "leases", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "coordination.k8s.io", Resource: "leases"}, "", nil)
	})
	r = &csr.Rounds{Approver: &csr.Approver{Kube: kube}, PostOutage: &csr.PostOutage{Now: c.now}}
	r.Once(ctx)
	c.advance(time.Hour)
	snap, ds, err = r.Once(ctx)
	if err != nil || snap.StaleErr == nil || len(snap.Stale) != 0 || ds[0].Approve {
		t.Errorf("leases forbidden: %v, StaleErr %v, stale %v, %+v", err, snap.StaleErr, snap.Stale, ds)
	}
}
