package csr

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"time"

	machinev1beta1 "github.com/openshift/api/machine/v1beta1"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/oc-recover/oc-recover/pkg/openshift"
)

// Decide returns a decision for every pending CSR in csrs (CSRs already
// approved, denied or failed are skipped), sorted oldest first.
//
// A CSR is approved only when it is a node client certificate or a kubelet
// serving certificate that passes every check of its kind (see the
// Category constants, checked in that order), and it is the newest valid
// CSR of its node and kind (client or serving); older ones are superseded.
// An already approved CSR newer than a pending one supersedes it as well.
// A client certificate asked by the bootstrapper for a node that does not
// exist and that no Machine announces is approved only if newNodes names it.
func Decide(csrs []certificatesv1.CertificateSigningRequest, nodes []corev1.Node, machines []machinev1beta1.Machine, newNodes sets.Set[string]) []Decision {
	v := newView(nodes, machines, newNodes)
	var out []Decision
	approved := map[string]issued{} // the newest approved CSR of each node's certificate
	for i := range csrs {
		c := &csrs[i]
		if IsPending(c) {
			out = append(out, v.decide(c))
			continue
		}
		if key := approvedCertificate(c); key != "" {
			a := issued{name: c.Name, created: c.CreationTimestamp.Time}
			if prev, ok := approved[key]; !ok || a.newerThan(prev) {
				approved[key] = a
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].Name < out[j].Name
	})
	supersede(out, approved)
	return out
}

// issued is a CSR that is, or is to be, approved.
type issued struct {
	name     string
	created  time.Time
	approved bool // already
}

// newerThan orders CSRs by creation time, then (same second) by name.
func (a issued) newerThan(b issued) bool {
	if !a.created.Equal(b.created) {
		return a.created.After(b.created)
	}
	return a.name > b.name
}

// supersede leaves only the newest valid CSR of each node and kind to
// approve; one older than an approved CSR of the same node and kind is
// superseded too, so that a duplicate is not approved on the next run
// either.
func supersede(out []Decision, approved map[string]issued) {
	newest := map[string]issued{}
	for k, a := range approved {
		a.approved = true
		newest[k] = a
	}
	for _, d := range out {
		if !d.Approve {
			continue
		}
		k, c := certificateOf(d), issued{name: d.Name, created: d.Created}
		if prev, ok := newest[k]; !ok || c.newerThan(prev) {
			newest[k] = c
		}
	}
	for i := range out {
		d := &out[i]
		if !d.Approve {
			continue
		}
		if n := newest[certificateOf(*d)]; n.name != d.Name {
			state := "a newer CSR"
			if n.approved {
				state = "a newer CSR, already approved,"
			}
			d.Approve, d.Category = false, Superseded
			d.Reason = fmt.Sprintf("superseded by %s, %s for the same node and certificate (%s)", n.name, state, d.Reason)
		}
	}
}

// certificateOf names the certificate a CSR is for: a node's client
// certificate (asked by the bootstrapper or renewed) or its serving one.
func certificateOf(d Decision) string {
	if d.Kind == Serving {
		return "serving/" + d.Node
	}
	return "client/" + d.Node
}

// approvedCertificate names the node certificate an approved CSR is for
// (as certificateOf does), or "" if it is not approved or not a node's.
func approvedCertificate(c *certificatesv1.CertificateSigningRequest) string {
	approved := false
	for _, cond := range c.Status.Conditions {
		switch cond.Type {
		case certificatesv1.CertificateApproved:
			approved = true
		case certificatesv1.CertificateDenied, certificatesv1.CertificateFailed:
			return ""
		}
	}
	if !approved || (c.Spec.SignerName != SignerClient && c.Spec.SignerName != SignerServing) {
		return ""
	}
	req, err := ParseRequest(c.Spec.Request)
	if err != nil {
		return ""
	}
	name, ok := strings.CutPrefix(req.Subject.CommonName, NodeUserPrefix)
	if !ok || name == "" {
		return ""
	}
	if c.Spec.SignerName == SignerServing {
		return "serving/" + name
	}
	return "client/" + name
}

// view is the cluster as the checks need it.
type view struct {
	nodes map[string]*corev1.Node
	// machines by the node they belong to: their nodeRef, or (no nodeRef
	// yet) their InternalDNS or Hostname address.
	machines map[string][]*machinev1beta1.Machine
	// announced are the machines with no nodeRef yet, by the node name they
	// announce.
	announced map[string]*machinev1beta1.Machine
	newNodes  sets.Set[string]
}

func newView(nodes []corev1.Node, machines []machinev1beta1.Machine, newNodes sets.Set[string]) *view {
	v := &view{nodes: map[string]*corev1.Node{}, machines: map[string][]*machinev1beta1.Machine{},
		announced: map[string]*machinev1beta1.Machine{}, newNodes: newNodes}
	for i := range nodes {
		v.nodes[nodes[i].Name] = &nodes[i]
	}
	for i := range machines {
		m := &machines[i]
		if m.Status.NodeRef != nil && m.Status.NodeRef.Name != "" {
			v.machines[m.Status.NodeRef.Name] = append(v.machines[m.Status.NodeRef.Name], m)
			continue
		}
		for _, name := range announcedNames(m) {
			v.machines[name] = append(v.machines[name], m)
			v.announced[name] = m
		}
	}
	return v
}

// announcedNames are the node names a Machine without a node yet announces.
func announcedNames(m *machinev1beta1.Machine) []string {
	names := sets.New[string]()
	for _, a := range m.Status.Addresses {
		if a.Type == corev1.NodeInternalDNS || a.Type == corev1.NodeHostName {
			names.Insert(a.Address)
		}
	}
	return sets.List(names)
}

func (v *view) decide(c *certificatesv1.CertificateSigningRequest) Decision {
	d := Decision{Name: c.Name, Created: c.CreationTimestamp.Time, Signer: c.Spec.SignerName, Requester: c.Spec.Username, Kind: Unknown}
	refuse := func(cat Category, format string, args ...any) Decision {
		d.Category, d.Reason = cat, fmt.Sprintf(format, args...)
		return d
	}
	groups := sets.New(c.Spec.Groups...)
	requesterNode, requesterIsNode := strings.CutPrefix(c.Spec.Username, NodeUserPrefix)
	if requesterIsNode {
		d.Node = requesterNode
	}

	// What is asked for, and by whom.
	switch c.Spec.SignerName {
	case SignerClient:
		switch {
		case c.Spec.Username == BootstrapperUser:
			d.Kind = ClientBootstrap
		case requesterIsNode:
			d.Kind = ClientRenewal
		}
	case SignerServing:
		d.Kind = Serving
	default:
		return refuse(NotANodeSigner, "signer %s is not a node's (%s or %s): not a node certificate, left alone", c.Spec.SignerName, SignerClient, SignerServing)
	}

	req, err := ParseRequest(c.Spec.Request)
	if err != nil {
		return refuse(BadRequest, "spec.request: %v", err)
	}
	cn := req.Subject.CommonName
	if name, ok := strings.CutPrefix(cn, NodeUserPrefix); ok && name != "" {
		d.Node = name
	}
	// Never approve a certificate that would carry a group other than
	// system:nodes, whatever else it claims.
	for _, o := range req.Subject.Organization {
		if o != NodesGroup {
			return refuse(WrongOrganization, "subject O %q contains %q: a node certificate carries no group but %s, never approved", req.Subject.Organization, o, NodesGroup)
		}
	}

	// The requester, and that it asks only for its own name.
	switch d.Kind {
	case Unknown:
		return refuse(WrongRequester, "requester %q may not ask for a node client certificate: only %s (a new or not-Ready node) or the node itself (%s<name>)", c.Spec.Username, BootstrapperUser, NodeUserPrefix)
	case ClientBootstrap:
		if !groups.Equal(sets.New(BootstrapperGroups...)) {
			return refuse(WrongGroups, "requester is the node-bootstrapper, but its groups %q are not exactly %q", c.Spec.Groups, BootstrapperGroups)
		}
	case ClientRenewal, Serving:
		if !requesterIsNode {
			return refuse(WrongRequester, "requester %q is not a node (%s<name>): only a node asks for its serving certificate", c.Spec.Username, NodeUserPrefix)
		}
		if !groups.Equal(sets.New(NodeGroups...)) {
			return refuse(WrongGroups, "requester %s is a node's user name, but its groups %q are not exactly %q", c.Spec.Username, c.Spec.Groups, NodeGroups)
		}
	}
	name, ok := strings.CutPrefix(cn, NodeUserPrefix)
	if !ok || len(validation.IsDNS1123Subdomain(name)) > 0 {
		return refuse(WrongCommonName, "subject CN %q is not %s<node name>", cn, NodeUserPrefix)
	}
	d.Node = name
	if d.Kind != ClientBootstrap && cn != c.Spec.Username {
		return refuse(RequesterMismatch, "subject CN %s differs from the requester %s: a node may only ask for its own name", cn, c.Spec.Username)
	}
	if len(req.Subject.Organization) != 1 {
		return refuse(WrongOrganization, "subject O %q is not exactly [%q]", req.Subject.Organization, NodesGroup)
	}

	// What the certificate would be good for.
	want := certificatesv1.UsageClientAuth
	if d.Kind == Serving {
		want = certificatesv1.UsageServerAuth
	}
	if !usagesAre(c.Spec.Usages, want) {
		return refuse(WrongUsages, "usages %q are not {%s, %s} (with or without %s)", c.Spec.Usages,
			certificatesv1.UsageDigitalSignature, want, certificatesv1.UsageKeyEncipherment)
	}
	if d.Kind == Serving {
		return v.decideServing(d, req)
	}
	if sans := sanList(req); sans != "" {
		return refuse(UnexpectedSANs, "a node client certificate has no subject alternative names; this one asks for %s", sans)
	}
	return v.decideClient(d)
}

// decideClient checks whose identity a client certificate claims: the rule
// that stops a node takeover.
func (v *view) decideClient(d Decision) Decision {
	node := v.nodes[d.Node]
	if d.Kind == ClientRenewal {
		if node == nil {
			d.Category, d.Reason = UnknownNode, fmt.Sprintf("node %s renews its client certificate, but there is no such node", d.Node)
			return d
		}
		d.Approve, d.Category, d.Reason = true, Valid, fmt.Sprintf("node %s renews its own client certificate", d.Node)
		return d
	}
	switch {
	case node != nil && openshift.NodeReady(node):
		d.Category = NodeReady
		d.Reason = fmt.Sprintf("the bootstrapper asks a client certificate for node %s, which is Ready: a Ready node renews its own, so this would take it over; refused", d.Node)
	case node != nil:
		d.Approve, d.Category = true, Valid
		d.Reason = fmt.Sprintf("the bootstrapper asks a client certificate for node %s, which exists and is not Ready (%s)", d.Node, readiness(node))
	case v.announced[d.Node] != nil:
		m := v.announced[d.Node]
		d.Approve, d.Category = true, Valid
		d.Reason = fmt.Sprintf("the bootstrapper asks a client certificate for new node %s, announced by Machine %s/%s (no node yet)", d.Node, m.Namespace, m.Name)
	case v.newNodes.Has(d.Node):
		d.Approve, d.Category = true, Valid
		d.Reason = fmt.Sprintf("the bootstrapper asks a client certificate for new node %s, named by the administrator", d.Node)
	default:
		d.Category = NewNodeUnconfirmed
		d.Reason = fmt.Sprintf("the bootstrapper asks a client certificate for %s, which is no node and which no Machine announces: approve it only if it is a new host of yours, with --new-node %s", d.Node, d.Node)
	}
	return d
}

// decideServing checks that a serving certificate names only the node's
// own addresses.
func (v *view) decideServing(d Decision, req *x509.CertificateRequest) Decision {
	refuse := func(cat Category, format string, args ...any) Decision {
		d.Category, d.Reason = cat, fmt.Sprintf(format, args...)
		return d
	}
	if len(req.EmailAddresses) > 0 || len(req.URIs) > 0 {
		return refuse(UnexpectedSANs, "a serving certificate names DNS names and IP addresses only; this one asks for %s", sanList(req))
	}
	if len(req.DNSNames) == 0 && len(req.IPAddresses) == 0 {
		return refuse(MissingSANs, "a serving certificate needs at least one DNS name or IP address; this one asks for none")
	}
	node := v.nodes[d.Node]
	if node == nil {
		return refuse(UnknownNode, "node %s asks a serving certificate, but there is no such node", d.Node)
	}
	dnsNames, ips := v.addresses(node)
	for _, name := range req.DNSNames {
		if !dnsNames.Has(strings.ToLower(name)) {
			return refuse(ForeignSAN, "DNS name %s is not among node %s's addresses (%s)", name, d.Node, describe(dnsNames, ips))
		}
	}
	for _, ip := range req.IPAddresses {
		if !ips.Has(ip.String()) {
			return refuse(ForeignSAN, "IP address %s is not among node %s's addresses (%s)", ip, d.Node, describe(dnsNames, ips))
		}
	}
	d.Approve, d.Category = true, Valid
	d.Reason = fmt.Sprintf("node %s asks a serving certificate for its own addresses (%s)", d.Node, sanList(req))
	return d
}

// addresses are the DNS names and IP addresses of node and of its Machines.
func (v *view) addresses(node *corev1.Node) (dnsNames, ips sets.Set[string]) {
	dnsNames, ips = sets.New[string](), sets.New[string]()
	add := func(addrs []corev1.NodeAddress) {
		for _, a := range addrs {
			switch a.Type {
			case corev1.NodeInternalIP, corev1.NodeExternalIP:
				if ip := net.ParseIP(a.Address); ip != nil {
					ips.Insert(ip.String())
				}
			case corev1.NodeInternalDNS, corev1.NodeExternalDNS, corev1.NodeHostName:
				dnsNames.Insert(strings.ToLower(a.Address))
			}
		}
	}
	add(node.Status.Addresses)
	for _, m := range v.machines[node.Name] {
		add(m.Status.Addresses)
	}
	return dnsNames, ips
}

func describe(dnsNames, ips sets.Set[string]) string {
	var parts []string
	if dnsNames.Len() > 0 {
		parts = append(parts, "DNS "+strings.Join(sets.List(dnsNames), ", "))
	}
	if ips.Len() > 0 {
		parts = append(parts, "IP "+strings.Join(sets.List(ips), ", "))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "; ")
}

// sanList describes the subject alternative names req asks for, "" if none.
func sanList(req *x509.CertificateRequest) string {
	var parts []string
	if len(req.DNSNames) > 0 {
		parts = append(parts, "DNS "+strings.Join(req.DNSNames, ", "))
	}
	if len(req.IPAddresses) > 0 {
		var s []string
		for _, ip := range req.IPAddresses {
			s = append(s, ip.String())
		}
		parts = append(parts, "IP "+strings.Join(s, ", "))
	}
	if len(req.EmailAddresses) > 0 {
		parts = append(parts, "email "+strings.Join(req.EmailAddresses, ", "))
	}
	if len(req.URIs) > 0 {
		var s []string
		for _, u := range req.URIs {
			s = append(s, u.String())
		}
		parts = append(parts, "URI "+strings.Join(s, ", "))
	}
	return strings.Join(parts, "; ")
}

// usagesAre reports whether usages are exactly {digital signature, want},
// optionally with key encipherment (RSA keys), each once.
func usagesAre(usages []certificatesv1.KeyUsage, want certificatesv1.KeyUsage) bool {
	got := sets.New(usages...)
	if got.Len() != len(usages) {
		return false
	}
	base := sets.New(certificatesv1.UsageDigitalSignature, want)
	return got.Equal(base) || got.Equal(base.Insert(certificatesv1.UsageKeyEncipherment))
}

// ParseRequest parses spec.request: exactly one PEM block of type
// CERTIFICATE REQUEST, without headers or anything around it, holding a
// PKCS#10 request whose signature verifies.
func ParseRequest(data []byte) (*x509.CertificateRequest, error) {
	trimmed := bytes.TrimSpace(data)
	if !bytes.HasPrefix(trimmed, []byte("-----BEGIN ")) {
		return nil, errors.New("not PEM")
	}
	block, rest := pem.Decode(trimmed)
	if block == nil {
		return nil, errors.New("malformed PEM")
	}
	if block.Type != "CERTIFICATE REQUEST" {
		return nil, fmt.Errorf("a PEM %s, not a CERTIFICATE REQUEST", block.Type)
	}
	if len(block.Headers) > 0 {
		return nil, errors.New("PEM headers in a certificate request")
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, errors.New("more than one PEM block, or data after the certificate request")
	}
	req, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("not a PKCS#10 certificate request: %v", err)
	}
	if err := req.CheckSignature(); err != nil {
		return nil, fmt.Errorf("the request's signature does not verify: %v", err)
	}
	return req, nil
}

func readiness(n *corev1.Node) string {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			if c.Reason == StaleReason {
				return c.Message // the post-outage rule's reason
			}
			return "Ready=" + string(c.Status)
		}
	}
	return "no Ready condition"
}

// NodesNotReady returns the names of the nodes that are not Ready, sorted.
func NodesNotReady(nodes []corev1.Node) []string {
	var out []string
	for i := range nodes {
		if !openshift.NodeReady(&nodes[i]) {
			out = append(out, nodes[i].Name)
		}
	}
	sort.Strings(out)
	return out
}

// DryRun sets the outcome a dry run reports: WouldApprove for the CSRs
// decided for approval, Pending for the others. Nothing is sent.
func DryRun(ds []Decision) {
	for i := range ds {
		ds[i].Outcome = Pending
		if ds[i].Approve {
			ds[i].Outcome = WouldApprove
		}
	}
}
