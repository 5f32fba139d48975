package csr_test

import (
	"fmt"
	"math/rand"
	"net"
	"strings"
	"testing"
	"time"

	machinev1beta1 "github.com/openshift/api/machine/v1beta1"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"

	"github.com/oc-recover/oc-recover/pkg/csr"
	"github.com/oc-recover/oc-recover/pkg/csr/csrtest"
)

// cluster is a corpus's nodes and machines: Ready nodes (half of them with
// a Machine), not-Ready nodes and announced machines without a node.
func cluster(h csrtest.Hosts) ([]corev1.Node, []machinev1beta1.Machine) {
	var nodes []corev1.Node
	var machines []machinev1beta1.Machine
	for i, x := range h.Ready {
		nodes = append(nodes, x.Node(true))
		if i%2 == 0 {
			machines = append(machines, x.Machine(true))
		}
	}
	for _, x := range h.NotReady {
		nodes = append(nodes, x.Node(false))
		machines = append(machines, x.Machine(true))
	}
	for _, x := range h.Announced {
		machines = append(machines, x.Machine(false))
	}
	return nodes, machines
}

// objects turns cases into stored CSRs, in a random order: the older
// duplicates an hour before the others, the others a millisecond apart.
func objects(cases []csrtest.Case, seed int64) ([]certificatesv1.CertificateSigningRequest, map[string]csrtest.Case) {
	base := time.Date(2025, 1, 2, 3, 0, 0, 0, time.UTC)
	var out []certificatesv1.CertificateSigningRequest
	byName := map[string]csrtest.Case{}
	for i, c := range cases {
		created := base.Add(time.Hour + time.Duration(i)*time.Millisecond)
		if c.Older {
			created = base.Add(time.Duration(i) * time.Millisecond)
		}
		name := fmt.Sprintf("csr-%04d", i)
		out = append(out, c.Object(name, created))
		byName[name] = c
	}
	r := rand.New(rand.NewSource(seed))
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out, byName
}

// The forged corpus: at least 200 forged CSRs of every kind, mixed with
// valid ones. Not one forged CSR is approved, every valid one is, and each
// forged one is refused for the reason its kind calls for.
func TestDecideForgedCorpus(t *testing.T) {
	hosts := csrtest.Hosts{
		Ready:     csrtest.NumberedHosts("ready", 40, 1),
		NotReady:  csrtest.NumberedHosts("not-ready", 10, 1000),
		Announced: csrtest.NumberedHosts("new", 10, 2000),
	}
	valid := csrtest.Valid(hosts)
	forged := csrtest.Forged(hosts, 12*len(csrtest.Kinds()), false)
	nodes, machines := cluster(hosts)
	csrs, byName := objects(append(valid, forged...), 1)

	decisions := csr.Decide(csrs, nodes, machines, nil)
	if len(decisions) != len(csrs) {
		t.Fatalf("%d decisions for %d pending CSRs", len(decisions), len(csrs))
	}
	kinds := map[string]int{}
	approvedForged, approvedValid := 0, 0
	for _, d := range decisions {
		c := byName[d.Name]
		if d.Reason == "" {
			t.Errorf("%s (%s): no reason", d.Name, c.Kind)
		}
		if !c.Valid {
			kinds[c.Kind]++
		}
		switch {
		case d.Approve && !c.Valid:
			approvedForged++
			t.Errorf("forged %s (%s) approved: %s", d.Name, c.Kind, d.Reason)
		case d.Approve:
			approvedValid++
		case c.Valid:
			t.Errorf("valid %s (%s, %s) not approved: %s: %s", d.Name, c.Kind, c.Node, d.Category, d.Reason)
		}
		if d.Category != c.Want {
			t.Errorf("%s (%s, node %s): category %s, want %s: %s", d.Name, c.Kind, c.Node, d.Category, c.Want, d.Reason)
		}
		if c.Valid && d.Node != c.Node {
			t.Errorf("%s: node %q, want %q", d.Name, d.Node, c.Node)
		}
	}
	if len(forged) < 200 || len(kinds) < 12 || len(kinds) != len(csrtest.Kinds()) {
		t.Errorf("corpus: %d forged CSRs of %d kinds (%d kinds defined)", len(forged), len(kinds), len(csrtest.Kinds()))
	}
	if approvedForged != 0 || approvedValid != len(valid) {
		t.Errorf("approved %d forged and %d of %d valid", approvedForged, approvedValid, len(valid))
	}
	t.Logf("%d valid and %d forged CSRs of %d kinds: %d valid approved, %d forged approved", len(valid), len(forged), len(kinds), approvedValid, approvedForged)

	// The next run, after the approvals, approves nothing more: the older
	// duplicates are superseded by the approved CSRs.
	for i := range csrs {
		if byName[csrs[i].Name].Valid {
			csrs[i].Status.Conditions = []certificatesv1.CertificateSigningRequestCondition{{Type: certificatesv1.CertificateApproved, Status: corev1.ConditionTrue}}
		}
	}
	again := csr.Decide(csrs, nodes, machines, nil)
	if len(again) != len(forged) {
		t.Errorf("next run: %d pending, want the %d forged", len(again), len(forged))
	}
	for _, d := range again {
		if c := byName[d.Name]; d.Approve || d.Category != c.Want {
			t.Errorf("next run: %s (%s): approve=%v %s: %s", d.Name, c.Kind, d.Approve, d.Category, d.Reason)
		}
	}
}

func decideOne(t *testing.T, c csrtest.Case, nodes []corev1.Node, machines []machinev1beta1.Machine, newNodes sets.Set[string]) csr.Decision {
	t.Helper()
	obj := c.Object("csr-one", time.Now())
	ds := csr.Decide([]certificatesv1.CertificateSigningRequest{obj}, nodes, machines, newNodes)
	if len(ds) != 1 {
		t.Fatalf("%d decisions", len(ds))
	}
	return ds[0]
}

// Whose identity a bootstrapper CSR may claim: a new node announced by a
// Machine, a node that exists and is not Ready, or a node the administrator
// names; never a Ready node.
func TestDecideBootstrapIdentity(t *testing.T) {
	ready := csrtest.Host{Name: "worker-0", IP: net.ParseIP("10.0.0.10")}
	notReady := csrtest.Host{Name: "worker-1", IP: net.ParseIP("10.0.0.11")}
	announced := csrtest.Host{Name: "worker-2", IP: net.ParseIP("10.0.0.12")}
	joined := csrtest.Host{Name: "worker-3", IP: net.ParseIP("10.0.0.13")}
	nodes := []corev1.Node{ready.Node(true), notReady.Node(false)}
	// A Machine whose node joined and was deleted announces nothing.
	machines := []machinev1beta1.Machine{announced.Machine(false), joined.Machine(true)}
	noCondition := csrtest.Host{Name: "worker-4"}.Node(false)
	noCondition.Status.Conditions = nil
	nodes = append(nodes, noCondition)

	cases := []struct {
		host     string
		newNodes []string
		want     csr.Category
		reason   string
	}{
		{"worker-0", nil, csr.NodeReady, "which is Ready"},
		{"worker-0", []string{"worker-0"}, csr.NodeReady, "which is Ready"},
		{"worker-1", nil, csr.Valid, "not Ready (Ready=Unknown)"},
		{"worker-2", nil, csr.Valid, "announced by Machine openshift-machine-api/machine-worker-2"},
		{"worker-3", nil, csr.NewNodeUnconfirmed, "--new-node worker-3"},
		{"worker-3", []string{"worker-3"}, csr.Valid, "named by the administrator"},
		{"worker-4", nil, csr.Valid, "no Ready condition"},
		{"stranger", []string{"worker-3"}, csr.NewNodeUnconfirmed, "--new-node stranger"},
	}
	for _, c := range cases {
		d := decideOne(t, csrtest.Bootstrap(csrtest.Host{Name: c.host}), nodes, machines, sets.New(c.newNodes...))
		if d.Category != c.want || d.Approve != (c.want == csr.Valid) || d.Kind != csr.ClientBootstrap || d.Node != c.host || !strings.Contains(d.Reason, c.reason) {
			t.Errorf("bootstrap for %s (new nodes %v): %+v, want %s with %q", c.host, c.newNodes, d, c.want, c.reason)
		}
	}
	// A renewal may renew only its own name, of a node that exists, Ready or not.
	for host, want := range map[string]csr.Category{"worker-0": csr.Valid, "worker-1": csr.Valid, "worker-2": csr.UnknownNode} {
		d := decideOne(t, csrtest.Renewal(csrtest.Host{Name: host}), nodes, machines, nil)
		if d.Category != want || d.Kind != csr.ClientRenewal {
			t.Errorf("renewal by %s: %+v, want %s", host, d, want)
		}
	}
}

// A serving certificate may name the node's addresses and its Machine's,
// nothing else.
func TestDecideServingAddresses(t *testing.T) {
	h := csrtest.Host{Name: "worker-0", IP: net.ParseIP("10.0.0.10")}
	node := h.Node(true)
	m := h.Machine(true)
	m.Status.Addresses = append(m.Status.Addresses,
		corev1.NodeAddress{Type: corev1.NodeInternalDNS, Address: "worker-0.example.internal"},
		corev1.NodeAddress{Type: corev1.NodeExternalIP, Address: "203.0.113.7"})
	other := csrtest.Host{Name: "worker-9", IP: net.ParseIP("10.0.0.19")}.Machine(true)
	other.Status.Addresses = append(other.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalDNS, Address: "worker-9.example.internal"})
	machines := []machinev1beta1.Machine{m, other}

	serving := func(dns []string, ips ...string) csrtest.Case {
		c := csrtest.ServingCSR(h)
		s := csrtest.Subject{CN: "system:node:worker-0", O: []string{"system:nodes"}, DNS: dns}
		for _, ip := range ips {
			s.IPs = append(s.IPs, net.ParseIP(ip))
		}
		c.Request = csrtest.Request(s)
		return c
	}
	cases := []struct {
		name string
		c    csrtest.Case
		want csr.Category
	}{
		{"node's own", serving([]string{"worker-0"}, "10.0.0.10"), csr.Valid},
		{"machine's DNS and external IP, other case", serving([]string{"Worker-0.Example.Internal"}, "203.0.113.7"), csr.Valid},
		{"IP only", serving(nil, "10.0.0.10"), csr.Valid},
		{"another machine's DNS", serving([]string{"worker-0", "worker-9.example.internal"}), csr.ForeignSAN},
		{"another machine's IP", serving(nil, "10.0.0.10", "10.0.0.19"), csr.ForeignSAN},
		{"no names", serving(nil), csr.MissingSANs},
	}
	for _, c := range cases {
		d := decideOne(t, c.c, []corev1.Node{node}, machines, nil)
		if d.Category != c.want || d.Kind != csr.Serving {
			t.Errorf("%s: %+v, want %s", c.name, d, c.want)
		}
	}
	// Without its Machine the node's own addresses only.
	if d := decideOne(t, serving([]string{"worker-0.example.internal"}), []corev1.Node{node}, nil, nil); d.Category != csr.ForeignSAN {
		t.Errorf("machine's DNS name without the machine: %+v", d)
	}
}

// Only pending CSRs are decided; of duplicates only the newest valid one
// is approved, the others name it.
func TestDecidePendingAndSuperseded(t *testing.T) {
	h := csrtest.Host{Name: "worker-0", IP: net.ParseIP("10.0.0.10")}
	nodes := []corev1.Node{h.Node(true)}
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	old1 := csrtest.Renewal(h).Object("csr-old1", t0)
	old2 := csrtest.Renewal(h).Object("csr-old2", t0.Add(time.Minute))
	newest := csrtest.Renewal(h).Object("csr-new", t0.Add(2*time.Minute))
	forgedNewer := csrtest.Renewal(h)
	forgedNewer.Usages = append(forgedNewer.Usages, certificatesv1.UsageServerAuth)
	forged := forgedNewer.Object("csr-forged", t0.Add(3*time.Minute))
	serving := csrtest.ServingCSR(h).Object("csr-serving", t0)
	approved := csrtest.Renewal(h).Object("csr-approved", t0.Add(-time.Minute))
	approved.Status.Conditions = []certificatesv1.CertificateSigningRequestCondition{{Type: certificatesv1.CertificateApproved, Status: corev1.ConditionTrue}}
	denied := csrtest.Renewal(h).Object("csr-denied", t0.Add(5*time.Minute))
	denied.Status.Conditions = []certificatesv1.CertificateSigningRequestCondition{{Type: certificatesv1.CertificateDenied, Status: corev1.ConditionTrue}}
	// Ties in time go to the greatest name.
	tieA := csrtest.ServingCSR(h).Object("csr-tie-a", t0.Add(time.Hour))
	tieB := csrtest.ServingCSR(h).Object("csr-tie-b", t0.Add(time.Hour))

	ds := csr.Decide([]certificatesv1.CertificateSigningRequest{forged, newest, approved, old2, tieB, denied, old1, serving, tieA}, nodes, nil, nil)
	got := map[string]csr.Decision{}
	var order []string
	for _, d := range ds {
		got[d.Name] = d
		order = append(order, d.Name)
	}
	if strings.Join(order, " ") != "csr-old1 csr-serving csr-old2 csr-new csr-forged csr-tie-a csr-tie-b" {
		t.Errorf("decided, oldest first: %v", order)
	}
	for name, want := range map[string]string{
		"csr-old1": "superseded by csr-new", "csr-old2": "superseded by csr-new", "csr-serving": "superseded by csr-tie-b",
		"csr-tie-a": "superseded by csr-tie-b", "csr-new": "renews its own", "csr-tie-b": "its own addresses", "csr-forged": "usages",
	} {
		d := got[name]
		if !strings.HasPrefix(d.Reason, want) && !strings.Contains(d.Reason, want) {
			t.Errorf("%s: %q, want %q", name, d.Reason, want)
		}
		if d.Approve != (name == "csr-new" || name == "csr-tie-b") {
			t.Errorf("%s: approve=%v", name, d.Approve)
		}
	}
	if d := got["csr-old1"]; d.Category != csr.Superseded || d.NeedsAttention() {
		t.Errorf("superseded: %+v", d)
	}

	// Once the newest is approved, the older ones stay superseded (by the
	// approved one) on the next run; a newer denied CSR supersedes nothing.
	newest.Status.Conditions = approved.Status.Conditions
	tieB.Status.Conditions = denied.Status.Conditions
	ds = csr.Decide([]certificatesv1.CertificateSigningRequest{old1, old2, newest, tieA, tieB, serving}, nodes, nil, nil)
	for _, d := range ds {
		want := map[string]string{"csr-old1": "superseded by csr-new, a newer CSR, already approved,", "csr-old2": "superseded by csr-new",
			"csr-serving": "superseded by csr-tie-a", "csr-tie-a": "its own addresses"}[d.Name]
		if !strings.Contains(d.Reason, want) || d.Approve != (d.Name == "csr-tie-a") {
			t.Errorf("next run: %s: approve=%v %q, want %q", d.Name, d.Approve, d.Reason, want)
		}
	}
}

// Any Organization but system:nodes is refused first, whatever else the
// CSR claims; the rest of the checks come in the documented order.
func TestDecideOrganizationEscalation(t *testing.T) {
	h := csrtest.Host{Name: "worker-0", IP: net.ParseIP("10.0.0.10")}
	c := csrtest.Bootstrap(h)
	c.Identity = csrtest.Identity{User: "developer", Groups: []string{"system:authenticated"}}
	c.Request = csrtest.Request(csrtest.Subject{CN: "system:admin", O: []string{"system:masters"}})
	d := decideOne(t, c, nil, nil, nil)
	if d.Category != csr.WrongOrganization || !strings.Contains(d.Reason, "system:masters") || d.Approve {
		t.Errorf("%+v", d)
	}
}

func TestParseRequest(t *testing.T) {
	good := csrtest.Request(csrtest.Subject{CN: "system:node:a", O: []string{"system:nodes"}})
	if _, err := csr.ParseRequest(append(append([]byte("\n"), good...), '\n')); err != nil {
		t.Errorf("a request with blank lines around: %v", err)
	}
	for name, data := range map[string][]byte{
		"empty":         nil,
		"text before":   append([]byte("hello\n"), good...),
		"two blocks":    append(append([]byte{}, good...), good...),
		"text after":    append(append([]byte{}, good...), []byte("trailer")...),
		"headers":       []byte(strings.Replace(string(good), "-----\n", "-----\nProc-Type: 4,ENCRYPTED\n\n", 1)),
		"not a request": []byte("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"),
	} {
		if _, err := csr.ParseRequest(data); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
}

func TestNodesNotReady(t *testing.T) {
	a := csrtest.Host{Name: "b"}.Node(false)
	b := csrtest.Host{Name: "a"}.Node(true)
	c := csrtest.Host{Name: "c"}.Node(false)
	c.Status.Conditions = nil
	if got := csr.NodesNotReady([]corev1.Node{a, b, c}); strings.Join(got, ",") != "b,c" {
		t.Errorf("NodesNotReady = %v", got)
	}
}

func TestDryRunReportsWhatWouldBeApprovedAndApprovesNothing(t *testing.T) {
	ds := []csr.Decision{{Name: "a", Approve: true}, {Name: "b", Approve: false}, {Name: "c", Approve: true, Outcome: csr.Approved}}
	csr.DryRun(ds)
	want := []csr.Outcome{csr.WouldApprove, csr.Pending, csr.WouldApprove}
	for i, d := range ds {
		if d.Outcome != want[i] {
			t.Errorf("%s: %s, want %s", d.Name, d.Outcome, want[i])
		}
	}
}
