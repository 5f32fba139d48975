package certs

import (
	"fmt"
	"strings"

	"github.com/oc-recover/oc-recover/pkg/csr"
	"github.com/oc-recover/oc-recover/pkg/era"
	"github.com/oc-recover/oc-recover/pkg/exitcode"
)

// Verdict is the exit code a report calls for, and why in a few words:
// 0 when the control plane has recovered and no certificate is expired; 3
// when the API is back but nodes, rotations, operators or certificates
// still need attention (a dry run that finds the cluster not recovered
// too); 1 when the API never answered or the release was refused.
func Verdict(r *Report) (int, string) {
	switch {
	case r.Phase == Refused:
		return exitcode.CodeFailure, "refused: this release's recovery is a host procedure"
	case r.Phase == WaitAPI:
		return exitcode.CodeFailure, "the API never answered"
	case r.Phase != Recovered:
		return exitcode.CodeNeedsAttention, "waiting for " + string(r.Phase)
	case len(r.StillExpired) > 0:
		return exitcode.CodeNeedsAttention, fmt.Sprintf("the control plane has recovered, but %d certificate check(s) still fail", len(r.StillExpired))
	}
	return exitcode.CodeSuccess, "recovered"
}

// docsOCPCertificates is where `oc adm ocp-certificates` is described.
const docsOCPCertificates = `OpenShift Container Platform 4.14 documentation, CLI tools, "OpenShift CLI administrator command reference"`

// Pointers say what to do about what a recovery left: the nodes not Ready,
// the CSRs left pending, the rotations still failing, the cluster
// operators, and each certificate check that still fails, with `oc adm
// ocp-certificates` where the release has it (4.14 and later; rel nil
// when unknown). command is the plugin as typed ("oc recover").
func Pointers(r *Report, rel *era.Release, command string) []string {
	var out []string
	if nr := append(append([]string{}, r.ControlPlane.NotReady...), r.Workers.NotReady...); len(nr) > 0 {
		out = append(out, fmt.Sprintf("Not Ready: %s. Each kubelet whose certificate expired asks a new one through CSRs (`oc get csr`); one that asks none cannot reach the API: look at it from its console (`journalctl -u kubelet`), and check its clock.", strings.Join(nr, ", ")))
	}
	for _, d := range r.CSRs {
		if d.Outcome == csr.Pending && d.Category == csr.NewNodeUnconfirmed {
			out = append(out, fmt.Sprintf("CSR %s asks a client certificate for %s, which no Machine announces: if it is a new host of yours, approve it with `%s csr approve --new-node %s`.", d.Name, d.Node, command, d.Node))
		}
	}
	if len(r.Conditions) > 0 {
		var names []string
		for _, c := range r.Conditions {
			names = append(names, c.Object+" "+c.Type)
		}
		out = append(out, fmt.Sprintf("Certificate rotations still failing: %s. The kube-apiserver's cert-regeneration controller regenerates expired certificates, usually within ten minutes of the kube-apiserver starting; if it does not, read its log: `oc logs -n openshift-kube-apiserver <kube-apiserver-pod> -c kube-apiserver-cert-regeneration-controller`.", strings.Join(names, ", ")))
	}
	if r.Phase == WaitOperators {
		out = append(out, "Cluster operators not settled: `oc get clusteroperators`; they recover after the nodes and certificates, often within minutes.")
	}
	if r.Phase != Recovered {
		out = append(out, fmt.Sprintf("Run `%s certs recover` again to go on waiting: it resumes where the cluster stands.", command))
	}
	if len(r.StillExpired) == 0 {
		return out
	}
	seen := map[string]bool{}
	for _, res := range r.StillExpired {
		if res.Fix != "" && !seen[res.Fix] {
			seen[res.Fix] = true
			out = append(out, fmt.Sprintf("%s: %s", res.ID, res.Fix))
		}
	}
	switch {
	case rel == nil || rel.Major > 4 || (rel.Major == 4 && rel.Minor >= 14):
		out = append(out, fmt.Sprintf("A certificate the cluster manages that stays expired can be renewed by hand: `oc adm ocp-certificates regenerate-leaf` for a certificate, `oc adm ocp-certificates regenerate-top-level` for a signer (%s). %s certs recover never regenerates one itself.", docsOCPCertificates, command))
	default:
		out = append(out, fmt.Sprintf("%s has no `oc adm ocp-certificates` (it came with 4.14): for a certificate the cluster manages that stays expired, open a support case. %s certs recover never regenerates one itself.", rel, command))
	}
	out = append(out, "A certificate that should be valid but shows as expired may be a clock: compare `date -u` here and on the hosts.")
	return out
}
