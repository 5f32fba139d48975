// Package csrtest builds certificate signing requests for tests and
// benchmarks: the ones nodes really send, and forgeries of every kind
// pkg/csr must refuse, with the Nodes and Machines they are about. It is
// pure; the test module's csrload creates them through a live apiserver.
package csrtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"net"
	"net/url"
	"time"

	machinev1beta1 "github.com/openshift/api/machine/v1beta1"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/oc-recover/oc-recover/pkg/csr"
)

// Identity is a user as the apiserver records it in a CSR's spec.
type Identity struct {
	User   string
	Groups []string
}

// Bootstrapper is the node-bootstrapper service account.
var Bootstrapper = Identity{User: csr.BootstrapperUser, Groups: csr.BootstrapperGroups}

// NodeIdentity is node name authenticated by its client certificate.
func NodeIdentity(name string) Identity {
	return Identity{User: csr.NodeUserPrefix + name, Groups: csr.NodeGroups}
}

// Subject is what a request asks for.
type Subject struct {
	CN     string
	O      []string
	DNS    []string
	IPs    []net.IP
	Emails []string
	URIs   []string
}

// Request returns a PEM certificate request for s, signed by a new ECDSA
// P-256 key.
func Request(s Subject) []byte {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.CertificateRequest{
		Subject:        pkix.Name{CommonName: s.CN, Organization: s.O},
		DNSNames:       s.DNS,
		IPAddresses:    s.IPs,
		EmailAddresses: s.Emails,
	}
	for _, u := range s.URIs {
		parsed, err := url.Parse(u)
		if err != nil {
			panic(err)
		}
		tmpl.URIs = append(tmpl.URIs, parsed)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		panic(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

// Host is a machine the corpus is about.
type Host struct {
	Name string
	IP   net.IP
}

// Node returns host's Node object, Ready or not, with the addresses a
// kubelet reports.
func (h Host) Node(ready bool) corev1.Node {
	status := corev1.ConditionTrue
	if !ready {
		status = corev1.ConditionUnknown
	}
	return corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: h.Name, Labels: map[string]string{"kubernetes.io/hostname": h.Name, "node-role.kubernetes.io/worker": ""}},
		Status: corev1.NodeStatus{
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: status}},
			Addresses:  []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: h.IP.String()}, {Type: corev1.NodeHostName, Address: h.Name}},
		},
	}
}

// Machine returns host's Machine, with a nodeRef (the node has joined) or
// without one (a new node the Machine announces).
func (h Host) Machine(nodeRef bool) machinev1beta1.Machine {
	m := machinev1beta1.Machine{
		ObjectMeta: metav1.ObjectMeta{Name: "machine-" + h.Name, Namespace: csr.MachineNamespace,
			Labels: map[string]string{"machine.openshift.io/cluster-api-machine-role": "worker"}},
		Status: machinev1beta1.MachineStatus{Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: h.IP.String()},
			{Type: corev1.NodeInternalDNS, Address: h.Name},
			{Type: corev1.NodeHostName, Address: h.Name},
		}},
	}
	if nodeRef {
		m.Status.NodeRef = &corev1.ObjectReference{Kind: "Node", Name: h.Name}
	}
	return m
}

// Hosts are the machines a corpus is about.
type Hosts struct {
	// Ready nodes exist and are Ready: their renewals and serving CSRs are valid.
	Ready []Host
	// NotReady nodes exist and are not Ready: the bootstrapper may ask for them.
	NotReady []Host
	// Announced hosts have a Machine without a nodeRef and no node yet: the
	// bootstrapper may ask for them.
	Announced []Host
}

// Case is one CSR of a corpus and what must become of it.
type Case struct {
	// Kind names the case: "valid-..." or the forgery.
	Kind string
	// Valid cases must be approved, all others left pending.
	Valid bool
	// Want is the category Decide must give.
	Want csr.Category
	// Node is the node the case is about.
	Node     string
	Identity Identity
	Signer   string
	Usages   []certificatesv1.KeyUsage
	Request  []byte
	// Older cases must be created before the others (at least a second
	// earlier): they are the duplicates a newer valid CSR supersedes.
	Older bool
	// APIRejects is set when the apiserver refuses to store the CSR (its
	// request does not parse), so only Decide's unit tests can see it.
	APIRejects bool
}

// Object returns c as the apiserver would store it: spec.username and
// groups are c's Identity.
func (c Case) Object(name string, created time.Time) certificatesv1.CertificateSigningRequest {
	return certificatesv1.CertificateSigningRequest{
		ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID("uid-" + name), CreationTimestamp: metav1.NewTime(created)},
		Spec: certificatesv1.CertificateSigningRequestSpec{
			Request: c.Request, SignerName: c.Signer, Usages: c.Usages,
			Username: c.Identity.User, Groups: c.Identity.Groups,
		},
	}
}

var (
	clientUsages  = []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth}
	clientUsagesK = []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageKeyEncipherment, certificatesv1.UsageClientAuth}
	servingUsages = []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageKeyEncipherment, certificatesv1.UsageServerAuth}
)

func nodeSubject(name string) Subject {
	return Subject{CN: csr.NodeUserPrefix + name, O: []string{csr.NodesGroup}}
}

func servingSubject(h Host) Subject {
	s := nodeSubject(h.Name)
	s.DNS, s.IPs = []string{h.Name}, []net.IP{h.IP}
	return s
}

// Renewal is node h renewing its client certificate (valid for a node that exists).
func Renewal(h Host) Case {
	return Case{Kind: "valid-renewal", Valid: true, Want: csr.Valid, Node: h.Name, Identity: NodeIdentity(h.Name),
		Signer: csr.SignerClient, Usages: clientUsages, Request: Request(nodeSubject(h.Name))}
}

// ServingCSR is node h asking a serving certificate for its own addresses.
func ServingCSR(h Host) Case {
	return Case{Kind: "valid-serving", Valid: true, Want: csr.Valid, Node: h.Name, Identity: NodeIdentity(h.Name),
		Signer: csr.SignerServing, Usages: servingUsages, Request: Request(servingSubject(h))}
}

// Bootstrap is the bootstrapper asking a client certificate for h (valid
// for a node that is not Ready, or new and announced by a Machine).
func Bootstrap(h Host) Case {
	return Case{Kind: "valid-bootstrap", Valid: true, Want: csr.Valid, Node: h.Name, Identity: Bootstrapper,
		Signer: csr.SignerClient, Usages: clientUsagesK, Request: Request(nodeSubject(h.Name))}
}

// Valid returns the valid cases of hosts: a renewal and a serving CSR for
// every Ready node, a bootstrapper CSR for every not-Ready and every
// announced one.
func Valid(hosts Hosts) []Case {
	var out []Case
	for _, h := range hosts.Ready {
		out = append(out, Renewal(h), ServingCSR(h))
	}
	for _, h := range hosts.NotReady {
		out = append(out, Bootstrap(h))
	}
	for _, h := range hosts.Announced {
		out = append(out, Bootstrap(h))
	}
	return out
}

// forgery makes the i-th forged case of one kind, about Ready host h
// (other is another Ready host).
type forgery struct {
	kind       string
	want       csr.Category
	apiRejects bool
	make       func(i int, h, other Host, hosts Hosts) Case
}

func forge(base Case, f func(*Case)) Case {
	f(&base)
	base.Valid = false
	return base
}

func withSubject(c Case, s Subject) Case {
	c.Request = Request(s)
	return c
}

var forgeries = []forgery{
	{"wrong-signer", csr.NotANodeSigner, false, func(i int, h, _ Host, _ Hosts) Case {
		signers := []string{certificatesv1.KubeAPIServerClientSignerName, "example.com/node-signer", "openshift.io/kubelet-client"}
		return forge(Renewal(h), func(c *Case) { c.Signer = signers[i%len(signers)] })
	}},
	{"wrong-requester", csr.WrongRequester, false, func(i int, h, _ Host, _ Hosts) Case {
		ids := []Identity{{"developer", []string{"system:authenticated"}},
			{"system:serviceaccount:default:default", []string{"system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"}},
			{"system:serviceaccount:openshift-machine-config-operator:machine-config-daemon", []string{"system:serviceaccounts", "system:serviceaccounts:openshift-machine-config-operator", "system:authenticated"}},
			{"system:admin", []string{"system:masters", "system:authenticated"}}}
		return forge(Bootstrap(h), func(c *Case) { c.Identity = ids[i%len(ids)] })
	}},
	{"bootstrapper-extra-group", csr.WrongGroups, false, func(i int, h, _ Host, _ Hosts) Case {
		extra := []string{"system:masters", "system:cluster-admins", "system:nodes"}
		return forge(Bootstrap(h), func(c *Case) {
			c.Identity.Groups = append(append([]string{}, csr.BootstrapperGroups...), extra[i%len(extra)])
		})
	}},
	{"bootstrapper-missing-group", csr.WrongGroups, false, func(i int, h, _ Host, _ Hosts) Case {
		groups := [][]string{{"system:serviceaccounts", "system:authenticated"}, {"system:serviceaccounts:openshift-machine-config-operator", "system:authenticated"}}
		return forge(Bootstrap(h), func(c *Case) { c.Identity.Groups = groups[i%len(groups)] })
	}},
	{"node-extra-group", csr.WrongGroups, false, func(i int, h, _ Host, _ Hosts) Case {
		base := []func(Host) Case{Renewal, ServingCSR}[i%2](h)
		return forge(base, func(c *Case) { c.Identity.Groups = append(append([]string{}, csr.NodeGroups...), "system:masters") })
	}},
	{"cn-not-a-node", csr.WrongCommonName, false, func(i int, h, _ Host, _ Hosts) Case {
		cns := []string{"system:admin", "node:" + h.Name, "system:node:", "system:nodes:" + h.Name, "System:Node:" + h.Name, "system:node:" + h.Name + "/x"}
		return forge(Bootstrap(h), func(c *Case) { c.Request = Request(Subject{CN: cns[i%len(cns)], O: []string{csr.NodesGroup}}) })
	}},
	{"cn-differs-from-requester", csr.RequesterMismatch, false, func(i int, h, other Host, _ Hosts) Case {
		if i%2 == 0 {
			return forge(Renewal(h), func(c *Case) { c.Request = Request(nodeSubject(other.Name)) })
		}
		return forge(ServingCSR(h), func(c *Case) { c.Request = Request(servingSubject(other)) })
	}},
	{"o-missing", csr.WrongOrganization, false, func(i int, h, _ Host, _ Hosts) Case {
		base := []func(Host) Case{Renewal, Bootstrap}[i%2](h)
		return forge(base, func(c *Case) { c.Request = Request(Subject{CN: csr.NodeUserPrefix + h.Name}) })
	}},
	{"o-system-masters", csr.WrongOrganization, false, func(i int, h, _ Host, _ Hosts) Case {
		orgs := [][]string{{csr.NodesGroup, "system:masters"}, {"system:masters"}, {"system:masters", csr.NodesGroup}, {csr.NodesGroup, "system:cluster-admins"}}
		base := []func(Host) Case{Renewal, ServingCSR}[i%2](h)
		return forge(base, func(c *Case) {
			s := nodeSubject(h.Name)
			if c.Signer == csr.SignerServing {
				s = servingSubject(h)
			}
			s.O = orgs[i%len(orgs)]
			c.Request = Request(s)
		})
	}},
	{"extra-usages", csr.WrongUsages, false, func(i int, h, _ Host, _ Hosts) Case {
		if i%3 == 2 {
			return forge(ServingCSR(h), func(c *Case) {
				c.Usages = append(append([]certificatesv1.KeyUsage{}, c.Usages...), certificatesv1.UsageClientAuth)
			})
		}
		extra := []certificatesv1.KeyUsage{certificatesv1.UsageServerAuth, certificatesv1.UsageCertSign}
		return forge(Renewal(h), func(c *Case) { c.Usages = append(append([]certificatesv1.KeyUsage{}, c.Usages...), extra[i%2]) })
	}},
	{"sans-on-client", csr.UnexpectedSANs, false, func(i int, h, _ Host, _ Hosts) Case {
		s := nodeSubject(h.Name)
		switch i % 4 {
		case 0:
			s.DNS = []string{h.Name}
		case 1:
			s.IPs = []net.IP{h.IP}
		case 2:
			s.Emails = []string{"admin@example.com"}
		case 3:
			s.URIs = []string{"spiffe://cluster/ns/kube-system/sa/admin"}
		}
		base := []func(Host) Case{Renewal, Bootstrap}[i%2](h)
		return forge(base, func(c *Case) { c.Request = Request(s) })
	}},
	{"foreign-dns-san", csr.ForeignSAN, false, func(i int, h, other Host, _ Hosts) Case {
		names := []string{"kubernetes.default.svc", "api.example.com", other.Name, "*.apps.example.com"}
		return forge(ServingCSR(h), func(c *Case) {
			s := servingSubject(h)
			s.DNS = append(s.DNS, names[i%len(names)])
			c.Request = Request(s)
		})
	}},
	{"foreign-ip-san", csr.ForeignSAN, false, func(i int, h, other Host, _ Hosts) Case {
		ips := []net.IP{other.IP, net.ParseIP("10.0.0.1"), net.ParseIP("172.30.0.1"), net.ParseIP("fd00::1")}
		return forge(ServingCSR(h), func(c *Case) {
			s := servingSubject(h)
			s.IPs = append(s.IPs, ips[i%len(ips)])
			c.Request = Request(s)
		})
	}},
	{"serving-no-sans", csr.MissingSANs, false, func(_ int, h, _ Host, _ Hosts) Case {
		return forge(ServingCSR(h), func(c *Case) { c.Request = Request(nodeSubject(h.Name)) })
	}},
	{"serving-email-san", csr.UnexpectedSANs, false, func(_ int, h, _ Host, _ Hosts) Case {
		return forge(ServingCSR(h), func(c *Case) {
			s := servingSubject(h)
			s.Emails = []string{"root@" + h.Name}
			c.Request = Request(s)
		})
	}},
	{"serving-unknown-node", csr.UnknownNode, false, func(i int, _, _ Host, _ Hosts) Case {
		ghost := Host{Name: fmt.Sprintf("ghost-serving-%d", i), IP: net.IPv4(10, 99, byte(i/250), byte(i%250+1))}
		return forge(ServingCSR(ghost), func(*Case) {})
	}},
	{"renewal-unknown-node", csr.UnknownNode, false, func(i int, _, _ Host, _ Hosts) Case {
		return forge(Renewal(Host{Name: fmt.Sprintf("ghost-client-%d", i)}), func(*Case) {})
	}},
	{"bootstrap-ready-node", csr.NodeReady, false, func(_ int, h, _ Host, _ Hosts) Case {
		return forge(Bootstrap(h), func(*Case) {})
	}},
	{"bootstrap-unannounced-node", csr.NewNodeUnconfirmed, false, func(i int, _, _ Host, _ Hosts) Case {
		return forge(Bootstrap(Host{Name: fmt.Sprintf("unannounced-%d", i)}), func(*Case) {})
	}},
	{"older-duplicate", csr.Superseded, false, func(i int, h, _ Host, hosts Hosts) Case {
		var c Case
		switch {
		case i%4 == 3 && len(hosts.NotReady) > 0:
			c = Bootstrap(hosts.NotReady[i/4%len(hosts.NotReady)])
		case i%2 == 0:
			c = Renewal(h)
		default:
			c = ServingCSR(h)
		}
		return forge(c, func(c *Case) { c.Older = true })
	}},
	{"trailing-pem-block", csr.BadRequest, false, func(_ int, h, _ Host, _ Hosts) Case {
		return forge(Renewal(h), func(c *Case) {
			c.Request = append(c.Request, Request(nodeSubject(h.Name))...)
		})
	}},
	{"malformed-pem", csr.BadRequest, true, func(i int, h, _ Host, _ Hosts) Case {
		return forge(Renewal(h), func(c *Case) {
			switch i % 3 {
			case 0:
				c.Request = c.Request[:len(c.Request)/2]
			case 1:
				c.Request = []byte("system:node:" + h.Name)
			default:
				c.Request = []byte{}
			}
		})
	}},
	{"not-a-csr-pem", csr.BadRequest, true, func(i int, h, _ Host, _ Hosts) Case {
		return forge(Renewal(h), func(c *Case) {
			block, _ := pem.Decode(c.Request)
			types := []string{"CERTIFICATE", "PRIVATE KEY", "PUBLIC KEY"}
			c.Request = pem.EncodeToMemory(&pem.Block{Type: types[i%len(types)], Bytes: block.Bytes})
		})
	}},
	{"bad-signature", csr.BadRequest, true, func(_ int, h, _ Host, _ Hosts) Case {
		return forge(Renewal(h), func(c *Case) {
			block, _ := pem.Decode(c.Request)
			der := append([]byte{}, block.Bytes...)
			der[len(der)-3] ^= 0xff
			c.Request = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
		})
	}},
}

// Kinds returns the names of the forgery kinds, and whether the apiserver
// would store each.
func Kinds() map[string]bool {
	out := map[string]bool{}
	for _, f := range forgeries {
		out[f.kind] = !f.apiRejects
	}
	return out
}

// Forged returns n forged cases about hosts, cycling through every kind
// (only those the apiserver stores when throughAPI is set). hosts must have
// at least two Ready nodes.
func Forged(hosts Hosts, n int, throughAPI bool) []Case {
	var kinds []forgery
	for _, f := range forgeries {
		if !throughAPI || !f.apiRejects {
			kinds = append(kinds, f)
		}
	}
	out := make([]Case, 0, n)
	for i := 0; i < n; i++ {
		f := kinds[i%len(kinds)]
		round := i / len(kinds)
		h := hosts.Ready[i%len(hosts.Ready)]
		other := hosts.Ready[(i+1)%len(hosts.Ready)]
		c := f.make(round, h, other, hosts)
		c.Kind, c.Want, c.APIRejects, c.Valid = f.kind, f.want, f.apiRejects, false
		out = append(out, c)
	}
	return out
}

// NumberedHosts returns n hosts named prefix-0000, ... with addresses
// 10.a.b.c from base up.
func NumberedHosts(prefix string, n, base int) []Host {
	out := make([]Host, n)
	for i := range out {
		k := base + i
		out[i] = Host{Name: fmt.Sprintf("%s-%04d", prefix, i), IP: net.IPv4(10, byte(k>>16), byte(k>>8), byte(k))}
	}
	return out
}
