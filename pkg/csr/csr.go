// Package csr decides which pending certificate signing requests of nodes
// may be approved, and approves them, as OpenShift's documentation does
// (OpenShift 4.5 documentation, Backup and restore, chapter 4 "Restarting the
// cluster gracefully" and 5.4 "Recovering from expired control plane
// certificates"; OpenShift 4.12 documentation, Backup and restore, 5.4.3 "Recovering from
// expired control plane certificates").
//
// The decision is pure: Decide takes the pending CSRs, the Nodes and the
// Machines and returns, for every pending CSR, whether to approve it and why.
// It approves only node client certificates (asked by the node-bootstrapper
// service account or renewed by the node itself) and kubelet serving
// certificates that pass every check; everything else is left pending, with
// the reason. Approver reads the cluster in three list requests and approves
// through the certificates/v1 approval subresource.
package csr

import (
	"sort"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
)

// The identities and names a node's certificates involve.
const (
	// SignerClient signs the kubelet's client certificate.
	SignerClient = certificatesv1.KubeAPIServerClientKubeletSignerName
	// SignerServing signs the kubelet's serving certificate.
	SignerServing = certificatesv1.KubeletServingSignerName

	// BootstrapperUser asks for a node's first client certificate (and for a
	// new one when the node's certificate expired) on OpenShift.
	BootstrapperUser = "system:serviceaccount:openshift-machine-config-operator:node-bootstrapper"
	// NodeUserPrefix starts the user name of a node (and the CN of its
	// certificates): system:node:<name>.
	NodeUserPrefix = "system:node:"
	// NodesGroup is the group of every node, and the only Organization a
	// node's certificate may carry.
	NodesGroup = "system:nodes"

	// ApprovalReason is the reason of the Approved condition oc-recover adds.
	ApprovalReason = "OcRecoverApprove"
	// MachineNamespace holds the Machine API's Machines.
	MachineNamespace = "openshift-machine-api"
)

// BootstrapperGroups are exactly the groups of the node-bootstrapper
// service account.
var BootstrapperGroups = []string{"system:serviceaccounts", "system:serviceaccounts:openshift-machine-config-operator", "system:authenticated"}

// NodeGroups are exactly the groups of a node authenticated by its client
// certificate.
var NodeGroups = []string{NodesGroup, "system:authenticated"}

// Kind is what a CSR asks for, told from its signer and requester.
type Kind string

const (
	// ClientBootstrap: a node client certificate asked by the bootstrapper.
	ClientBootstrap Kind = "client-bootstrap"
	// ClientRenewal: a node client certificate asked by the node itself.
	ClientRenewal Kind = "client-renewal"
	// Serving: a kubelet serving certificate.
	Serving Kind = "serving"
	// Unknown: anything else.
	Unknown Kind = "unknown"
)

// Category is the machine-readable reason of a decision.
type Category string

const (
	// Valid: every check passed; approve.
	Valid Category = "Valid"
	// NotANodeSigner: the signer is neither the kubelet client nor the
	// kubelet serving signer: not a node's certificate, left alone.
	NotANodeSigner Category = "NotANodeSigner"
	// BadRequest: spec.request is not exactly one well-formed, correctly
	// signed PEM CERTIFICATE REQUEST.
	BadRequest Category = "BadRequest"
	// WrongRequester: the requester may not ask for this kind of certificate.
	WrongRequester Category = "WrongRequester"
	// WrongGroups: the requester's groups are not exactly what its identity has.
	WrongGroups Category = "WrongGroups"
	// WrongCommonName: the subject CN is not system:node:<name>.
	WrongCommonName Category = "WrongCommonName"
	// RequesterMismatch: a node asks for a certificate in another name.
	RequesterMismatch Category = "RequesterMismatch"
	// WrongOrganization: the subject O is not exactly system:nodes (for
	// example it adds system:masters).
	WrongOrganization Category = "WrongOrganization"
	// WrongUsages: the usages are not those of this kind of certificate.
	WrongUsages Category = "WrongUsages"
	// UnexpectedSANs: subject alternative names a certificate of this kind
	// never carries (any on a client certificate; email or URI on a serving one).
	UnexpectedSANs Category = "UnexpectedSANs"
	// MissingSANs: a serving certificate without a DNS or IP name.
	MissingSANs Category = "MissingSANs"
	// ForeignSAN: a serving certificate for a DNS name or IP address that is
	// not the node's.
	ForeignSAN Category = "ForeignSAN"
	// UnknownNode: the node does not exist.
	UnknownNode Category = "UnknownNode"
	// NodeReady: the bootstrapper asks a certificate for a node that is
	// Ready (and so has a working one): a takeover, refused.
	NodeReady Category = "NodeReady"
	// NewNodeUnconfirmed: the bootstrapper asks a certificate for a node
	// that does not exist and that no Machine announces; the administrator
	// must name it (--new-node) or confirm it.
	NewNodeUnconfirmed Category = "NewNodeUnconfirmed"
	// Superseded: a newer valid CSR of the same node and kind exists.
	Superseded Category = "Superseded"
)

// Outcome is what became of a CSR.
type Outcome string

const (
	// Approved: oc-recover approved it.
	Approved Outcome = "Approved"
	// WouldApprove: a dry run; it would have been approved.
	WouldApprove Outcome = "WouldApprove"
	// Pending: left pending, for Reason.
	Pending Outcome = "Pending"
	// ApprovedElsewhere: someone else approved it meanwhile.
	ApprovedElsewhere Outcome = "ApprovedElsewhere"
	// DeniedElsewhere: someone else denied it (or it failed) meanwhile: not approved.
	DeniedElsewhere Outcome = "DeniedElsewhere"
	// Gone: deleted (or replaced by another CSR of the same name) meanwhile: not approved.
	Gone Outcome = "Gone"
	// Failed: the approval request failed; see Error.
	Failed Outcome = "Failed"
)

// Decision is what to do with one pending CSR, and why.
type Decision struct {
	Name      string    `json:"name"`
	Created   time.Time `json:"created"`
	Signer    string    `json:"signer"`
	Requester string    `json:"requester"`
	Kind      Kind      `json:"kind"`
	// Node is the node the CSR is for (from its CN, else its requester), if any.
	Node     string   `json:"node,omitempty"`
	Approve  bool     `json:"approve"`
	Category Category `json:"category"`
	Reason   string   `json:"reason"`

	// Outcome and Error are filled in by Approver.Approve (or the caller).
	Outcome Outcome `json:"outcome,omitempty"`
	Error   string  `json:"error,omitempty"`
}

// NeedsAttention reports whether d was left pending for a reason the
// administrator should look at: anything but a superseded duplicate.
func (d Decision) NeedsAttention() bool {
	return d.Outcome == Pending && d.Category != Superseded
}

// SortDecisions orders decisions by creation, then by name: the order in
// which reports list them.
func SortDecisions(ds []Decision) {
	sort.Slice(ds, func(i, j int) bool {
		if !ds[i].Created.Equal(ds[j].Created) {
			return ds[i].Created.Before(ds[j].Created)
		}
		return ds[i].Name < ds[j].Name
	})
}

// Report is the result of `csr approve`: every pending CSR with its
// decision and outcome.
type Report struct {
	DryRun bool       `json:"dryRun"`
	CSRs   []Decision `json:"csrs"`
	// Approved counts the CSRs approved (or, in a dry run, to approve).
	Approved int `json:"approved"`
	// LeftPending counts the CSRs left pending, superseded ones included.
	LeftPending int `json:"leftPending"`
	// NodesNotReady are the nodes not Ready at the end (--watch).
	NodesNotReady []string `json:"nodesNotReady,omitempty"`
	// TimedOut is set when --watch gave up before every node was Ready.
	TimedOut bool `json:"timedOut,omitempty"`
}

// IsPending reports whether c awaits a decision: no Approved, Denied or
// Failed condition and no certificate issued.
func IsPending(c *certificatesv1.CertificateSigningRequest) bool {
	if len(c.Status.Certificate) > 0 {
		return false
	}
	for _, cond := range c.Status.Conditions {
		switch cond.Type {
		case certificatesv1.CertificateApproved, certificatesv1.CertificateDenied, certificatesv1.CertificateFailed:
			return false
		}
	}
	return true
}
