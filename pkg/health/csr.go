package health

import (
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/oc-recover/oc-recover/pkg/csr"
	"github.com/oc-recover/oc-recover/pkg/openshift"
)

// staleCSR is how long a CSR may wait: the machine approver answers a
// node's CSRs within seconds, and a kubelet asks again every few minutes.
const staleCSR = 15 * time.Minute

// suspicious are the refusals of a CSR that claims what its requester may
// not have: a forgery, or a takeover of a Ready node. They are worth a look
// however new the CSR is.
var suspicious = map[csr.Category]bool{
	csr.BadRequest: true, csr.WrongRequester: true, csr.WrongGroups: true, csr.WrongCommonName: true,
	csr.RequesterMismatch: true, csr.WrongOrganization: true, csr.WrongUsages: true,
	csr.UnexpectedSANs: true, csr.MissingSANs: true, csr.ForeignSAN: true, csr.NodeReady: true,
}

// PendingCSRs judges the pending CSRs by what pkg/csr decided for them
// (decisions is csr.Decide's answer for the pending CSRs, the nodes and
// Machines): FAIL when a client certificate pkg/csr would approve waits
// for a control-plane node that is not Ready, the node-bootstrapper case
// after expired certificates or a long shutdown; WARN for a CSR pkg/csr
// refuses as forged, and for any other CSR pending for more than 15
// minutes. A CSR superseded by a newer one of the same node is left out:
// kubelets leave those behind as they retry.
func PendingCSRs(decisions []csr.Decision, nodes []corev1.Node, now time.Time) Result {
	r := Result{ID: "csr.pending", Severity: OK}
	byName := map[string]*corev1.Node{}
	for i := range nodes {
		byName[nodes[i].Name] = &nodes[i]
	}
	var approve bool
	var inspect []string
	superseded := 0
	for _, d := range decisions {
		if d.Category == csr.Superseded {
			superseded++
			continue
		}
		node := byName[d.Node]
		age := now.Sub(d.Created)
		line := fmt.Sprintf("%s (%s, %s old)", d.Name, describeCSR(d), roughly(age))
		switch {
		case d.Approve && d.Kind != csr.Serving && node != nil && openshift.IsControlPlane(node) && !openshift.NodeReady(node):
			r.Severity = Fail
			approve = true
			r.Evidence = append(r.Evidence, fmt.Sprintf("%s: control-plane node %s is not Ready and waits for it: %s", line, d.Node, d.Reason))
		case !d.Approve && suspicious[d.Category]:
			r.Severity = Worse(r.Severity, Warn)
			inspect = append(inspect, d.Name)
			r.Evidence = append(r.Evidence, fmt.Sprintf("%s: would not be approved: %s", line, d.Reason))
		case age <= staleCSR:
			// Still within the time an approver takes: nothing to say.
		case d.Approve:
			r.Severity = Worse(r.Severity, Warn)
			approve = true
			r.Evidence = append(r.Evidence, fmt.Sprintf("%s: nobody approved it; would be approved: %s", line, d.Reason))
		default:
			r.Severity = Worse(r.Severity, Warn)
			r.Evidence = append(r.Evidence, fmt.Sprintf("%s: would not be approved: %s", line, d.Reason))
		}
	}
	sort.Strings(r.Evidence)
	r.Summary = fmt.Sprintf("%d pending CSRs", len(decisions)-superseded)
	if superseded > 0 {
		r.Summary += fmt.Sprintf(" (and %d superseded by newer ones)", superseded)
	}
	var fix []string
	if approve {
		// The machine approver does not approve a bootstrapper CSR for a
		// node that already exists, nor anything on user-provisioned hosts.
		fix = append(fix, "approve the valid ones with `oc recover csr approve` (`--watch` until every node is Ready)")
	}
	if len(inspect) > 0 {
		fix = append(fix, fmt.Sprintf("inspect the refused ones (`oc describe csr %s`) and deny what you did not expect (`oc adm certificate deny <name>`)", strings.Join(inspect, " ")))
	}
	if len(fix) == 0 && r.Severity != OK {
		fix = append(fix, "see what they are with `oc describe csr <name>`; a new host's bootstrapper CSR: `oc recover csr approve --new-node <node>`")
	}
	r.Fix = strings.Join(fix, "; ")
	return r
}

// describeCSR says what a CSR asks for: "client-bootstrap for master-1".
func describeCSR(d csr.Decision) string {
	if d.Node == "" {
		return string(d.Kind)
	}
	return fmt.Sprintf("%s for %s", d.Kind, d.Node)
}
