package health

import (
	"net"
	"strings"
	"testing"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/oc-recover/oc-recover/pkg/csr"
	"github.com/oc-recover/oc-recover/pkg/csr/csrtest"
)

func decision(name string, kind csr.Kind, node string, age time.Duration, approve bool, cat csr.Category) csr.Decision {
	return csr.Decision{Name: name, Created: now.Add(-age), Kind: kind, Node: node, Approve: approve, Category: cat, Reason: string(cat) + " reason"}
}

func TestPendingCSRs(t *testing.T) {
	nodes := []corev1.Node{node("master-0", true, corev1.ConditionTrue, 0), node("master-1", true, corev1.ConditionUnknown, time.Hour), node("worker-0", false, corev1.ConditionUnknown, time.Hour)}
	for _, tc := range []struct {
		name     string
		d        csr.Decision
		severity Severity
		evidence string
		fix      string
	}{
		{"a new valid CSR", decision("csr-a", csr.Serving, "master-0", time.Minute, true, csr.Valid), OK, "", ""},
		{"a valid CSR for 16 minutes", decision("csr-a", csr.Serving, "master-0", 16*time.Minute, true, csr.Valid), Warn,
			"csr-a (serving for master-0, 16m old): nobody approved it; would be approved: Valid reason", "oc recover csr approve"},
		{"a valid CSR for 15 minutes", decision("csr-a", csr.Serving, "master-0", 15*time.Minute, true, csr.Valid), OK, "", ""},
		{"the bootstrapper asks for a control-plane node that is not Ready", decision("csr-b", csr.ClientBootstrap, "master-1", time.Minute, true, csr.Valid), Fail,
			"csr-b (client-bootstrap for master-1, 1m old): control-plane node master-1 is not Ready and waits for it", "oc recover csr approve"},
		{"the bootstrapper asks for a worker that is not Ready", decision("csr-b", csr.ClientBootstrap, "worker-0", time.Minute, true, csr.Valid), OK, "", ""},
		{"a forged CSR, just made", decision("csr-f", csr.ClientBootstrap, "master-0", time.Minute, false, csr.WrongOrganization), Warn,
			"csr-f (client-bootstrap for master-0, 1m old): would not be approved: WrongOrganization reason", "oc describe csr csr-f"},
		{"another signer's CSR, for an hour", decision("csr-o", csr.Unknown, "", time.Hour, false, csr.NotANodeSigner), Warn,
			"csr-o (unknown, 1h old): would not be approved: NotANodeSigner reason", "oc describe csr <name>"},
		{"another signer's CSR, just made", decision("csr-o", csr.Unknown, "", time.Minute, false, csr.NotANodeSigner), OK, "", ""},
		{"a superseded duplicate, a day old", decision("csr-s", csr.ClientBootstrap, "master-1", 24*time.Hour, false, csr.Superseded), OK, "", ""},
	} {
		r := PendingCSRs([]csr.Decision{tc.d}, nodes, now)
		if r.Severity != tc.severity || !strings.Contains(evidence(r), tc.evidence) || (tc.evidence == "") != (len(r.Evidence) == 0) || !strings.Contains(r.Fix, tc.fix) || (tc.fix == "") != (r.Fix == "") {
			t.Errorf("%s: %+v, want %s with %q, fix %q", tc.name, r, tc.severity, tc.evidence, tc.fix)
		}
	}
	if r := PendingCSRs(nil, nodes, now); r.Severity != OK || r.Summary != "0 pending CSRs" {
		t.Errorf("none pending: %+v", r)
	}
}

// TestPendingCSRsDecided runs the check on what csr.Decide says of a real
// bootstrapper CSR for a control-plane node whose kubelet lost its
// certificate.
func TestPendingCSRsDecided(t *testing.T) {
	host := csrtest.Host{Name: "master-1", IP: net.ParseIP("10.0.0.11")}
	n := host.Node(false)
	n.Labels["node-role.kubernetes.io/master"] = ""
	c := csrtest.Bootstrap(host).Object("csr-boot", now.Add(-2*time.Minute))
	decisions := csr.Decide([]certificatesv1.CertificateSigningRequest{c}, []corev1.Node{n}, nil, nil)
	if r := PendingCSRs(decisions, []corev1.Node{n}, now); r.Severity != Fail || !strings.Contains(evidence(r), "csr-boot (client-bootstrap for master-1, 2m old)") {
		t.Errorf("%+v", r)
	}
}
