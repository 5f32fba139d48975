package csr_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/oc-recover/oc-recover/pkg/csr"
	"github.com/oc-recover/oc-recover/pkg/csr/csrtest"
)

var (
	notReadyHost = csrtest.Host{Name: "worker-0", IP: net.ParseIP("10.0.0.10")}
	newHostA     = csrtest.Host{Name: "worker-8", IP: net.ParseIP("10.0.0.18")}
	newHostB     = csrtest.Host{Name: "worker-9", IP: net.ParseIP("10.0.0.19")}
)

// fakeCluster holds a node that is not Ready and the given CSRs, all
// pending.
func fakeCluster(t *testing.T, csrs ...certificatesv1.CertificateSigningRequest) *fake.Clientset {
	t.Helper()
	node := notReadyHost.Node(false)
	kube := fake.NewClientset(&node)
	for i := range csrs {
		if _, err := kube.CertificatesV1().CertificateSigningRequests().Create(context.Background(), &csrs[i], metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return kube
}

func csrObject(c csrtest.Case, name string) certificatesv1.CertificateSigningRequest {
	return c.Object(name, time.Now().Add(-time.Minute))
}

// approvedOnServer lists the CSRs the fake API holds as approved.
func approvedOnServer(t *testing.T, kube *fake.Clientset) sets.Set[string] {
	t.Helper()
	list, err := kube.CertificatesV1().CertificateSigningRequests().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := sets.New[string]()
	for _, c := range list.Items {
		for _, cond := range c.Status.Conditions {
			if cond.Type == certificatesv1.CertificateApproved && cond.Status == corev1.ConditionTrue {
				out.Insert(c.Name)
			}
		}
	}
	return out
}

func outcomes(ds []csr.Decision) map[string]csr.Outcome {
	out := map[string]csr.Outcome{}
	for _, d := range ds {
		out[d.Name] = d.Outcome
	}
	return out
}

func TestRoundsAsksOnceThenApprovesWhatArrives(t *testing.T) {
	kube := fakeCluster(t, csrObject(csrtest.Bootstrap(notReadyHost), "csr-1"))
	asked := 0
	var shown []csr.Decision
	r := &csr.Rounds{Approver: &csr.Approver{Kube: kube}, Confirm: func(ds []csr.Decision) (bool, error) {
		asked++
		shown = append([]csr.Decision(nil), ds...) // Approve fills in the same slice afterwards
		return true, nil
	}}
	_, ds, err := r.Once(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if asked != 1 || len(shown) != 1 || !shown[0].Approve || shown[0].Outcome != "" {
		t.Fatalf("asked %d time(s) about %+v, want once, about csr-1 before it is approved", asked, shown)
	}
	if got := outcomes(ds); got["csr-1"] != csr.Approved {
		t.Fatalf("outcomes %v, want csr-1 Approved", got)
	}

	// A serving CSR arrives once the client certificate is issued: the
	// confirmation given covers it.
	serving := csrObject(csrtest.ServingCSR(notReadyHost), "csr-2")
	if _, err := kube.CertificatesV1().CertificateSigningRequests().Create(context.Background(), &serving, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, ds, err = r.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	if asked != 1 {
		t.Errorf("asked %d times, want once for the whole run", asked)
	}
	if got := outcomes(ds); got["csr-2"] != csr.Approved {
		t.Errorf("second round outcomes %v, want csr-2 Approved", got)
	}
	if got := approvedOnServer(t, kube); !got.Equal(sets.New("csr-1", "csr-2")) {
		t.Errorf("approved on the server: %v, want csr-1 and csr-2", sets.List(got))
	}
}

func TestRoundsDeclinedApprovesNothing(t *testing.T) {
	kube := fakeCluster(t, csrObject(csrtest.Bootstrap(notReadyHost), "csr-1"))
	r := &csr.Rounds{Approver: &csr.Approver{Kube: kube}, Confirm: func([]csr.Decision) (bool, error) { return false, nil }}
	if _, _, err := r.Once(context.Background()); !errors.Is(err, csr.ErrNotConfirmed) {
		t.Fatalf("err = %v, want ErrNotConfirmed", err)
	}
	if got := approvedOnServer(t, kube); got.Len() != 0 {
		t.Errorf("approved on the server after a refusal: %v", sets.List(got))
	}
}

func TestRoundsNewNodesAskedAboutOnce(t *testing.T) {
	kube := fakeCluster(t, csrObject(csrtest.Bootstrap(newHostA), "csr-a"), csrObject(csrtest.Bootstrap(newHostB), "csr-b"))
	asked := map[string]int{}
	r := &csr.Rounds{Approver: &csr.Approver{Kube: kube}, ConfirmNewNode: func(d csr.Decision) (bool, error) {
		asked[d.Node]++
		return d.Node == newHostA.Name, nil
	}}
	for round := 1; round <= 2; round++ {
		_, ds, err := r.Once(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			switch d.Name {
			case "csr-a":
				if round == 1 && d.Outcome != csr.Approved {
					t.Errorf("round %d: csr-a (new node confirmed) is %s: %s, want Approved", round, d.Outcome, d.Reason)
				}
			case "csr-b":
				if d.Outcome != csr.Pending || d.Category != csr.NewNodeUnconfirmed || !strings.HasSuffix(d.Reason, " (not confirmed at the prompt)") {
					t.Errorf("round %d: csr-b (new node declined) is %s/%s: %q, want Pending, NewNodeUnconfirmed, marked not confirmed", round, d.Outcome, d.Category, d.Reason)
				}
			}
		}
	}
	if asked[newHostA.Name] != 1 || asked[newHostB.Name] != 1 {
		t.Errorf("asked %v, want each new node asked about once over two rounds", asked)
	}
	if !r.NewNodes.Has(newHostA.Name) || r.NewNodes.Has(newHostB.Name) {
		t.Errorf("NewNodes = %v, want only the confirmed %s", sets.List(r.NewNodes), newHostA.Name)
	}
	if got := approvedOnServer(t, kube); !got.Equal(sets.New("csr-a")) {
		t.Errorf("approved on the server: %v, want only csr-a", sets.List(got))
	}
}

func TestRoundsDryRunAsksNothingAndApprovesNothing(t *testing.T) {
	kube := fakeCluster(t, csrObject(csrtest.Bootstrap(notReadyHost), "csr-1"), csrObject(csrtest.Bootstrap(newHostA), "csr-a"))
	never := func(string) { t.Errorf("a dry run asked") }
	r := &csr.Rounds{Approver: &csr.Approver{Kube: kube}, DryRun: true,
		Confirm:        func([]csr.Decision) (bool, error) { never("confirm"); return true, nil },
		ConfirmNewNode: func(csr.Decision) (bool, error) { never("new node"); return true, nil }}
	_, ds, err := r.Once(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := outcomes(ds); got["csr-1"] != csr.WouldApprove || got["csr-a"] != csr.Pending {
		t.Errorf("outcomes %v, want csr-1 WouldApprove and csr-a Pending", got)
	}
	if got := approvedOnServer(t, kube); got.Len() != 0 {
		t.Errorf("a dry run approved %v", sets.List(got))
	}
}

func TestUntilTriesAgainUntilDone(t *testing.T) {
	kube := fakeCluster(t)
	unreachable := errors.New("connection refused")
	failures := 2
	var retried []error
	r := &csr.Rounds{Approver: &csr.Approver{Kube: kube}, Interval: time.Millisecond,
		Before: func(context.Context) error {
			if failures > 0 {
				failures--
				return unreachable
			}
			return nil
		},
		Retry: func(err error) { retried = append(retried, err) }}
	rounds := 0
	err := r.Until(context.Background(), func(context.Context, *csr.Snapshot, []csr.Decision) (bool, error) {
		rounds++
		return rounds == 2, nil
	})
	if err != nil {
		t.Fatalf("Until = %v, want nil once done", err)
	}
	if len(retried) != 2 || !errors.Is(retried[0], unreachable) {
		t.Errorf("retried %v, want the two failed rounds", retried)
	}
	if rounds != 2 {
		t.Errorf("done asked %d times, want 2 (once per round that read the cluster)", rounds)
	}
}

func TestUntilStopsOnARefusal(t *testing.T) {
	final := errors.New("unsupported release")
	for name, tc := range map[string]struct {
		before func(context.Context) error
		want   error
	}{
		"declined at the prompt": {before: func(context.Context) error { return csr.ErrNotConfirmed }, want: csr.ErrNotConfirmed},
		"an error Final names":   {before: func(context.Context) error { return final }, want: final},
	} {
		t.Run(name, func(t *testing.T) {
			r := &csr.Rounds{Approver: &csr.Approver{Kube: fakeCluster(t)}, Interval: time.Millisecond, Before: tc.before,
				Final: func(err error) bool { return errors.Is(err, final) },
				Retry: func(err error) { t.Errorf("tried again after %v", err) }}
			err := r.Until(context.Background(), func(context.Context, *csr.Snapshot, []csr.Decision) (bool, error) { return true, nil })
			if !errors.Is(err, tc.want) {
				t.Errorf("Until = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestUntilEndsWithTheContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	r := &csr.Rounds{Approver: &csr.Approver{Kube: fakeCluster(t)}, Interval: time.Millisecond}
	err := r.Until(ctx, func(context.Context, *csr.Snapshot, []csr.Decision) (bool, error) { return false, nil })
	if !errors.Is(err, context.DeadlineExceeded) || ctx.Err() == nil {
		t.Errorf("Until = %v, want the context's deadline", err)
	}
}
