package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/oc-recover/oc-recover/pkg/csr"
	"github.com/oc-recover/oc-recover/pkg/csr/csrtest"
	"github.com/oc-recover/oc-recover/test/box"
	"github.com/oc-recover/oc-recover/test/csrload"
	"github.com/oc-recover/oc-recover/test/internal/boxtest"
)

// csrBox is a box of its own for the CSR tests (they add nodes, machines
// and CSRs), with its hosts: the box's nodes are Ready; two more Node
// objects are not Ready; two Machines announce new nodes.
func csrBox(t *testing.T) (*box.Box, csrtest.Hosts) {
	t.Helper()
	b := boxtest.StartBox(t, box.Options{Workers: 1})
	ctx := context.Background()
	hosts := csrtest.Hosts{
		NotReady:  csrtest.NumberedHosts("csr-not-ready", 2, 1),
		Announced: csrtest.NumberedHosts("csr-new", 2, 100),
	}
	for _, n := range b.NodeList() {
		hosts.Ready = append(hosts.Ready, csrtest.Host{Name: n.Name, IP: n.IP})
	}
	if err := csrload.GrantCSRCreation(ctx, b.Kube); err != nil {
		t.Fatal(err)
	}
	if err := csrload.CreateNodes(ctx, b.Kube, hosts.NotReady, false, 4); err != nil {
		t.Fatal(err)
	}
	if err := csrload.CreateMachines(ctx, b.Machine, hosts.NotReady, true, 4); err != nil {
		t.Fatal(err)
	}
	if err := csrload.CreateMachines(ctx, b.Machine, hosts.Announced, false, 4); err != nil {
		t.Fatal(err)
	}
	return b, hosts
}

// csrs returns every CSR by name.
func csrs(t *testing.T, b *box.Box) map[string]certificatesv1.CertificateSigningRequest {
	t.Helper()
	list, err := b.Kube.CertificatesV1().CertificateSigningRequests().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]certificatesv1.CertificateSigningRequest{}
	for _, c := range list.Items {
		out[c.Name] = c
	}
	return out
}

func deleteCSRs(t *testing.T, b *box.Box) {
	t.Helper()
	if err := b.Kube.CertificatesV1().CertificateSigningRequests().DeleteCollection(context.Background(), metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
		t.Fatal(err)
	}
}

func createCSRs(t *testing.T, b *box.Box, cases ...csrtest.Case) []string {
	t.Helper()
	names, err := csrload.Create(context.Background(), b.Admin, cases, 8)
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// approval returns the Approved condition oc-recover (or anyone) added, or nil.
func approval(c certificatesv1.CertificateSigningRequest) *certificatesv1.CertificateSigningRequestCondition {
	for i := range c.Status.Conditions {
		if c.Status.Conditions[i].Type == certificatesv1.CertificateApproved {
			return &c.Status.Conditions[i]
		}
	}
	return nil
}

func csrReport(t *testing.T, r boxtest.Result) csr.Report {
	t.Helper()
	var rep csr.Report
	if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil {
		t.Fatalf("csr approve -o json: %v\n%s", err, r)
	}
	return rep
}

// Valid and forged CSRs, created through the API as the identities they
// claim (the apiserver records the requester): --dry-run approves nothing
// and lists every one; then exactly the valid ones are approved, through
// the approval subresource, with a reason and message naming oc-recover.
func TestCSRApprove(t *testing.T) {
	t.Parallel()
	b, hosts := csrBox(t)
	ctx := context.Background()

	t.Run("corpus", func(t *testing.T) {
		valid := csrtest.Valid(hosts)
		forged := csrtest.Forged(hosts, 3*len(csrtest.Kinds()), true)
		cases := append(append([]csrtest.Case{}, valid...), forged...)
		names := createCSRs(t, b, cases...)
		byName := map[string]csrtest.Case{}
		kinds := map[string]bool{}
		for i, n := range names {
			byName[n] = cases[i]
			if !cases[i].Valid {
				kinds[cases[i].Kind] = true
			}
		}
		if len(kinds) < 12 {
			t.Fatalf("only %d kinds of forgery through the API", len(kinds))
		}

		r := tools.Run(t, b, "", "kubectl-recover", "csr", "approve", "--dry-run", "-o", "json")
		rep := csrReport(t, r)
		if r.Code != 3 || !rep.DryRun || len(rep.CSRs) != len(cases) || rep.Approved != len(valid) || rep.LeftPending != len(forged) {
			t.Fatalf("dry run: exit %d, dryRun %v, %d CSRs listed of %d, %d to approve of %d valid, %d pending of %d forged\n%s",
				r.Code, rep.DryRun, len(rep.CSRs), len(cases), rep.Approved, len(valid), rep.LeftPending, len(forged), r.Stderr)
		}
		for name, c := range csrs(t, b) {
			if approval(c) != nil {
				t.Errorf("dry run approved %s", name)
			}
		}
		r = tools.Run(t, b, "", "kubectl-recover", "csr", "approve", "--dry-run", "-o", "yaml")
		var fromYAML csr.Report
		if err := yaml.Unmarshal([]byte(r.Stdout), &fromYAML); err != nil || len(fromYAML.CSRs) != len(cases) || r.Code != 3 {
			t.Errorf("dry run -o yaml: %v\n%s", err, r)
		}

		r = tools.Run(t, b, "", "kubectl-recover", "csr", "approve", "-o", "json")
		rep = csrReport(t, r)
		if r.Code != 3 || len(rep.CSRs) != len(cases) || rep.Approved != len(valid) {
			t.Errorf("approve: exit %d, %d listed, %d approved\n%s", r.Code, len(rep.CSRs), rep.Approved, r.Stderr)
		}
		for _, d := range rep.CSRs {
			c := byName[d.Name]
			wantOutcome := csr.Pending
			if c.Valid {
				wantOutcome = csr.Approved
			}
			if d.Category != c.Want || d.Outcome != wantOutcome || d.Reason == "" {
				t.Errorf("%s (%s, node %s): %s %s %q, want %s %s", d.Name, c.Kind, c.Node, d.Outcome, d.Category, d.Reason, wantOutcome, c.Want)
			}
		}
		approvedForged := 0
		for name, obj := range csrs(t, b) {
			c, cond := byName[name], approval(obj)
			switch {
			case c.Valid && cond == nil:
				t.Errorf("valid %s (%s) not approved", name, c.Kind)
			case c.Valid && (cond.Reason != csr.ApprovalReason || !strings.HasPrefix(cond.Message, "Approved by oc-recover: ")):
				t.Errorf("%s: approved with reason %q, message %q", name, cond.Reason, cond.Message)
			case !c.Valid && cond != nil:
				approvedForged++
				t.Errorf("forged %s (%s) approved", name, c.Kind)
			}
		}
		t.Logf("%d valid and %d forged CSRs of %d kinds through the API: %d forged approved", len(valid), len(forged), len(kinds), approvedForged)

		// Again: only the forged ones are pending; the table says why.
		r = tools.Run(t, b, "", "kubectl-recover", "csr", "approve")
		if r.Code != 3 || !strings.Contains(r.Stdout, "superseded by csr-") || !strings.Contains(r.Stdout, "system:masters") ||
			!strings.Contains(r.Stdout, "Approved 0 CSR(s); left "+strconv.Itoa(len(forged))+" pending") {
			t.Errorf("approve again: %s", r)
		}
		deleteCSRs(t, b)
	})

	t.Run("nothing needs attention", func(t *testing.T) {
		createCSRs(t, b, csrtest.Renewal(hosts.Ready[0]), csrtest.ServingCSR(hosts.Ready[3]))
		r := tools.Run(t, b, "", "kubectl-recover", "csr", "approve")
		if r.Code != 0 || !strings.Contains(r.Stdout, "Approved 2 CSR(s); left 0 pending") {
			t.Errorf("two valid CSRs: %s", r)
		}
		r = tools.Run(t, b, "", "kubectl-recover", "csr", "approve")
		if r.Code != 0 || !strings.Contains(r.Stdout, "No pending CSRs.") {
			t.Errorf("no pending CSRs: %s", r)
		}
		deleteCSRs(t, b)
	})

	// The rule that stops a node takeover, and new nodes no Machine announces.
	t.Run("bootstrapper identity", func(t *testing.T) {
		master0 := hosts.Ready[0]
		names := createCSRs(t, b, csrtest.Bootstrap(master0), csrtest.Bootstrap(csrtest.Host{Name: "brand-new-0"}))
		r := tools.Run(t, b, "", "kubectl-recover", "csr", "approve", "-o", "json")
		rep := csrReport(t, r)
		got := map[string]csr.Decision{}
		for _, d := range rep.CSRs {
			got[d.Name] = d
		}
		if r.Code != 3 || got[names[0]].Category != csr.NodeReady || got[names[1]].Category != csr.NewNodeUnconfirmed ||
			!strings.Contains(got[names[1]].Reason, "--new-node brand-new-0") {
			t.Fatalf("bootstrapper CSRs for a Ready node and an unknown one: %+v\n%s", rep, r)
		}
		r = tools.Run(t, b, "", "kubectl-recover", "csr", "approve", "--new-node", "brand-new-0", "-o", "json")
		rep = csrReport(t, r)
		all := csrs(t, b)
		if r.Code != 3 || rep.Approved != 1 || approval(all[names[0]]) != nil || approval(all[names[1]]) == nil {
			t.Errorf("--new-node brand-new-0: %+v\n%s", rep, r)
		}
		if r := tools.Run(t, b, "", "kubectl-recover", "csr", "approve", "--new-node", "Not_A_Node"); r.Code != 2 {
			t.Errorf("--new-node with a bad name: %s", r)
		}
		deleteCSRs(t, b)
	})

	// On a terminal, a new node no Machine announces is asked about.
	t.Run("prompt", func(t *testing.T) {
		names := createCSRs(t, b, csrtest.Bootstrap(csrtest.Host{Name: "brand-new-1"}))
		r := runOnTerminal(t, b, "y\ny\n", "csr", "approve")
		if approval(csrs(t, b)[names[0]]) == nil || r.Code != 0 || !strings.Contains(r.Stdout, "Is brand-new-1 a new host of yours?") {
			t.Errorf("confirmed at the prompt: %s", r)
		}
		names = createCSRs(t, b, csrtest.Bootstrap(csrtest.Host{Name: "brand-new-2"}))
		r = runOnTerminal(t, b, "n\n", "csr", "approve")
		if approval(csrs(t, b)[names[0]]) != nil || r.Code != 3 || !strings.Contains(r.Stdout, "not confirmed at the prompt") {
			t.Errorf("declined at the prompt: %s", r)
		}
		deleteCSRs(t, b)
	})

	// --watch approves CSRs as they arrive, until every node is Ready.
	t.Run("watch", func(t *testing.T) {
		r := tools.Run(t, b, "", "kubectl-recover", "csr", "approve", "--watch", "--timeout", "2s", "--interval", "200ms")
		if r.Code != 3 || !strings.Contains(r.Stdout, "Nodes not Ready: csr-not-ready-0000, csr-not-ready-0001") ||
			!strings.Contains(r.Stderr, "timed out after 2s") {
			t.Fatalf("watch with nodes that stay not Ready: %s", r)
		}
		r = tools.Run(t, b, "", "kubectl-recover", "csr", "approve", "--watch", "--dry-run")
		if r.Code != 0 || !strings.Contains(r.Stdout, "not Ready now: csr-not-ready-0000, csr-not-ready-0001") {
			t.Errorf("watch dry run: %s", r)
		}

		cmd := exec.Command(filepath.Join(tools.BinDir, "kubectl-recover"), "csr", "approve", "--watch", "--timeout", "90s", "--interval", "200ms", "-o", "json")
		cmd.Env = append(os.Environ(), "KUBECONFIG="+b.Kubeconfig, "HOME="+t.TempDir())
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		time.Sleep(time.Second) // a round or more with nothing to approve
		names := createCSRs(t, b, csrtest.Bootstrap(hosts.NotReady[0]), csrtest.Bootstrap(hosts.NotReady[1]))
		err := box.WaitFor(ctx, 30*time.Second, "the watch to approve both CSRs", func(context.Context) (bool, string, error) {
			all := csrs(t, b)
			return approval(all[names[0]]) != nil && approval(all[names[1]]) != nil, "", nil
		})
		if err != nil {
			_ = cmd.Process.Kill()
			t.Fatalf("%v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
		}
		// The kubelets got their certificates and post Ready.
		for _, h := range hosts.NotReady {
			if err := csrload.SetNodeReady(ctx, b.Kube, h.Name, true); err != nil {
				t.Fatal(err)
			}
		}
		select {
		case err := <-done:
			var rep csr.Report
			if err != nil || json.Unmarshal(stdout.Bytes(), &rep) != nil || rep.Approved != 2 || len(rep.NodesNotReady) != 0 {
				t.Errorf("watch: %v, %+v\nstdout:\n%s\nstderr:\n%s", err, rep, stdout.String(), stderr.String())
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			t.Fatalf("watch did not end when every node was Ready\nstdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
		}
		deleteCSRs(t, b)
	})

	// The approval path against the real apiserver: what someone else did
	// meanwhile is reported and left alone.
	t.Run("approved, denied or replaced meanwhile", func(t *testing.T) {
		master1 := hosts.Ready[1]
		names := createCSRs(t, b, csrtest.Renewal(master1), csrtest.ServingCSR(master1), csrtest.Renewal(hosts.Ready[2]), csrtest.ServingCSR(hosts.Ready[2]))
		a := &csr.Approver{Kube: b.Kube, Machine: b.Machine}
		snap, err := a.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ds := csr.Decide(snap.CSRs, snap.Nodes, snap.Machines, nil)
		if len(ds) != 4 {
			t.Fatalf("decisions: %+v", ds)
		}
		api := b.Kube.CertificatesV1().CertificateSigningRequests()
		mark := func(name string, typ certificatesv1.RequestConditionType) {
			obj, err := api.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			obj.Status.Conditions = append(obj.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{Type: typ, Status: "True", Reason: "ByHand"})
			if _, err := api.UpdateApproval(ctx, name, obj, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		mark(names[0], certificatesv1.CertificateApproved)
		mark(names[1], certificatesv1.CertificateDenied)
		// names[2] is deleted and another CSR, from another node, takes its name.
		if err := api.Delete(ctx, names[2], metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		impostor := csrtest.Renewal(hosts.Ready[3])
		impostor.Kind = "impostor"
		replacement := &certificatesv1.CertificateSigningRequest{ObjectMeta: metav1.ObjectMeta{Name: names[2]},
			Spec: certificatesv1.CertificateSigningRequestSpec{Request: impostor.Request, SignerName: impostor.Signer, Usages: impostor.Usages}}
		if _, err := api.Create(ctx, replacement, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}

		ds, failed := a.Approve(ctx, snap.CSRs, ds)
		want := map[string]csr.Outcome{names[0]: csr.ApprovedElsewhere, names[1]: csr.DeniedElsewhere, names[2]: csr.Gone, names[3]: csr.Approved}
		for _, d := range ds {
			if d.Outcome != want[d.Name] {
				t.Errorf("%s: %s (%s), want %s", d.Name, d.Outcome, d.Error, want[d.Name])
			}
		}
		all := csrs(t, b)
		if failed != 0 || approval(all[names[2]]) != nil || approval(all[names[0]]).Reason != "ByHand" {
			t.Errorf("failed %d; replaced CSR %+v; approved by hand %+v", failed, all[names[2]].Status, all[names[0]].Status)
		}
		deleteCSRs(t, b)
	})
}
