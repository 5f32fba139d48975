package certs_test

import (
	"strings"
	"testing"

	"github.com/oc-recover/oc-recover/pkg/certs"
	"github.com/oc-recover/oc-recover/pkg/csr"
	"github.com/oc-recover/oc-recover/pkg/era"
	"github.com/oc-recover/oc-recover/pkg/health"
	"github.com/oc-recover/oc-recover/pkg/power"
)

var expiredUnmanaged = health.Result{ID: "certs.unmanaged", Severity: health.Fail, Summary: "1 expired",
	Evidence: []string{"openshift-config/custom-api-cert expired 3d ago"}, Fix: "replace it"}

// The exit codes: 0 recovered with nothing expired; 3 when the API is back
// but something still needs attention; 1 when the API never answered or
// the release was refused.
func TestVerdict(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    certs.Report
		code int
		why  string
	}{
		{"recovered", certs.Report{Phase: certs.Recovered}, 0, "recovered"},
		{"recovered, a warning", certs.Report{Phase: certs.Recovered, Warnings: []health.Result{{ID: "certs.unmanaged", Severity: health.Warn}}}, 0, "recovered"},
		{"recovered, one expired", certs.Report{Phase: certs.Recovered, StillExpired: []health.Result{expiredUnmanaged}}, 3, "1 certificate check(s) still fail"},
		{"nodes", certs.Report{Phase: certs.WaitControlPlane}, 3, "waiting for control-plane nodes"},
		{"rotations", certs.Report{Phase: certs.WaitRotations}, 3, "waiting for certificate rotations"},
		{"dry run, not recovered", certs.Report{DryRun: true, Phase: certs.WaitWorkers}, 3, "worker nodes"},
		{"dry run, recovered", certs.Report{DryRun: true, Phase: certs.Recovered}, 0, "recovered"},
		{"API", certs.Report{Phase: certs.WaitAPI}, 1, "the API never answered"},
		{"4.3", certs.Report{Phase: certs.Refused}, 1, "host procedure"},
	} {
		code, why := certs.Verdict(&tc.r)
		if code != tc.code || !strings.Contains(why, tc.why) {
			t.Errorf("%s: %d %q, want %d %q", tc.name, code, why, tc.code, tc.why)
		}
	}
}

// What is left, and what to do: nodes, a CSR for a host no Machine
// announces, rotations, operators, each failing check's fix, and `oc adm
// ocp-certificates` only where the release has it.
func TestPointers(t *testing.T) {
	r := &certs.Report{Phase: certs.WaitRotations,
		State: power.State{Workers: power.NodeCount{NotReady: []string{"worker-0"}},
			Conditions: []power.Condition{{Object: "kubeapiserver/cluster", Type: "CertRotation_AggregatorProxyClientCert_Degraded", Status: "True"}}},
		CSRs: []csr.Decision{{Name: "csr-x", Node: "worker-9", Outcome: csr.Pending, Category: csr.NewNodeUnconfirmed},
			{Name: "csr-y", Node: "master-0", Outcome: csr.Pending, Category: csr.WrongOrganization}},
		StillExpired: []health.Result{expiredUnmanaged, expiredUnmanaged}}
	got := certs.Pointers(r, &era.Release{Version: "4.14.8", Major: 4, Minor: 14}, "oc recover")
	text := strings.Join(got, "\n")
	for _, want := range []string{
		"Not Ready: worker-0.", "journalctl -u kubelet",
		"`oc recover csr approve --new-node worker-9`",
		"Certificate rotations still failing: kubeapiserver/cluster CertRotation_AggregatorProxyClientCert_Degraded", "-c kube-apiserver-cert-regeneration-controller",
		"Run `oc recover certs recover` again",
		"certs.unmanaged: replace it",
		"`oc adm ocp-certificates regenerate-leaf`", "`oc adm ocp-certificates regenerate-top-level`", "never regenerates one itself",
		"may be a clock",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("pointers lack %q:\n%s", want, text)
		}
	}
	if strings.Count(text, "replace it") != 1 || strings.Contains(text, "csr-y") {
		t.Errorf("a fix twice, or a pointer for a forged CSR:\n%s", text)
	}
	old := strings.Join(certs.Pointers(&certs.Report{Phase: certs.Recovered, StillExpired: []health.Result{expiredUnmanaged}},
		&era.Release{Version: "4.12.3", Major: 4, Minor: 12}, "oc recover"), "\n")
	if strings.Contains(old, "ocp-certificates regenerate") || !strings.Contains(old, "OpenShift 4.12.3 has no `oc adm ocp-certificates`") || strings.Contains(old, "again") {
		t.Errorf("4.12 pointers:\n%s", old)
	}
	if p := certs.Pointers(&certs.Report{Phase: certs.Recovered}, nil, "oc recover"); len(p) != 0 {
		t.Errorf("nothing left, yet pointers: %v", p)
	}
}
