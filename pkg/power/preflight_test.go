package power

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
)

func preflightNode(name string, controlPlane, ready bool) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{}}}
	if controlPlane {
		n.Labels["node-role.kubernetes.io/master"] = ""
	}
	status := corev1.ConditionTrue
	if !ready {
		status = corev1.ConditionFalse
	}
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: status}}
	return n
}

func TestPreflight(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	nodes := []runtime.Object{preflightNode("master-1", true, true), preflightNode("worker-1", false, false), preflightNode("master-0", true, true)}
	signer := func(notAfter time.Time, annotation string) runtime.Object {
		return signerSecret(certPEM(t, notAfter), annotation)
	}
	cases := []struct {
		name    string
		objects []runtime.Object
		// err is a substring of the error; "" means none.
		err string
		// report: whether a report comes back (with the error, a refusal
		// that shows the expiry).
		report  bool
		warning string
	}{
		{name: "the signer outlives the restart", objects: append(nodes, signer(now.Add(90*24*time.Hour), "")), report: true},
		{name: "the annotation disagrees: a warning in the report", report: true, warning: "the certificate counts",
			objects: append(nodes, signer(now.Add(90*24*time.Hour), now.Add(80*24*time.Hour).Format(time.RFC3339)))},
		{name: "the signer expires before the restart: refused, with the expiry", objects: append(nodes, signer(now.Add(10*24*time.Hour), "")),
			err: "refusing, nothing was done: ", report: true},
		{name: "no signer secret", objects: nodes, err: "refusing: cannot read openshift-kube-apiserver-operator/kube-apiserver-to-kubelet-signer"},
		{name: "an unreadable signer", objects: append(nodes, signerSecret([]byte("not PEM"), "")), err: "refusing: "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			restartBy := now.Add(30 * 24 * time.Hour)
			targets, r, err := Preflight(context.Background(), fake.NewClientset(tc.objects...), restartBy, now)
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("err = %v, want none", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("err = %v, want one containing %q", err, tc.err)
			}
			if !tc.report {
				if r != nil || targets != nil {
					t.Errorf("got targets %v and report %+v with %v, want neither", targets, r, err)
				}
				return
			}
			if r == nil || r.Signer == nil {
				t.Fatalf("report %+v, want one with the signer's expiry", r)
			}
			var order []string
			for _, tg := range targets {
				order = append(order, tg.Node)
			}
			if got := strings.Join(order, " "); got != "worker-1 master-0 master-1" {
				t.Errorf("targets %q, want the workers first, then the control plane, by name", got)
			}
			if len(r.Nodes) != 3 || r.Nodes[0].Outcome != NotScheduled || !r.RestartBy.Equal(restartBy) {
				t.Errorf("report nodes %+v, restart by %s; want 3 nodes NotScheduled and restart by %s", r.Nodes, r.RestartBy, restartBy)
			}
			if r.Signer.Source != "certificate" {
				t.Errorf("signer read from its %s, want the certificate", r.Signer.Source)
			}
			switch {
			case tc.warning == "" && len(r.Warnings) > 0:
				t.Errorf("warnings %q, want none", r.Warnings)
			case tc.warning != "" && (len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], tc.warning) || r.Warnings[0] != r.Signer.Warning):
				t.Errorf("warnings %q, want the signer's warning (%q)", r.Warnings, tc.warning)
			}
		})
	}
}

func TestPreflightNoNodesIsErrNoNodes(t *testing.T) {
	now := time.Now()
	_, _, err := Preflight(context.Background(), fake.NewClientset(signerSecret(certPEM(t, now.Add(90*24*time.Hour)), "")), now, now)
	if !errors.Is(err, ErrNoNodes) || err.Error() != "the cluster has no nodes" {
		t.Errorf("err = %v, want ErrNoNodes, worded as before", err)
	}
}
