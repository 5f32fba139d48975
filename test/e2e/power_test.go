package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	configv1 "github.com/openshift/api/config/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/sets"

	"github.com/oc-recover/oc-recover/pkg/csr"
	"github.com/oc-recover/oc-recover/pkg/csr/csrtest"
	"github.com/oc-recover/oc-recover/pkg/power"
	"github.com/oc-recover/oc-recover/test/box"
	"github.com/oc-recover/oc-recover/test/internal/boxtest"
)

// ---- helpers ----

// nodeNames are the box's nodes, by name.
func nodeNames(b *box.Box) []string {
	var names []string
	for _, n := range b.NodeList() {
		names = append(names, n.Name)
	}
	sort.Strings(names)
	return names
}

// assertNothingScheduled checks that no host has a shutdown scheduled and
// that every host is on.
func assertNothingScheduled(t *testing.T, b *box.Box) {
	t.Helper()
	for _, n := range nodeNames(b) {
		if at, ok := b.ScheduledShutdown(n); ok {
			t.Errorf("%s: a shutdown is scheduled for %s", n, at.Format(time.TimeOnly))
		}
		if !b.MachineOn(n) {
			t.Errorf("%s: powered off", n)
		}
	}
}

// clusterReady returns the nodes not Ready and the cluster operators not
// Available or Degraded, as the API has them.
func clusterReady(t *testing.T, b *box.Box) (notReady, badOperators []string) {
	t.Helper()
	ctx := context.Background()
	nodes, err := b.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range nodes.Items {
		if boxtest.NodeReady(&nodes.Items[i]) != corev1.ConditionTrue {
			notReady = append(notReady, nodes.Items[i].Name)
		}
	}
	cos, err := b.Config.ConfigV1().ClusterOperators().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, co := range cos.Items {
		ok := 0
		for _, c := range co.Status.Conditions {
			if (c.Type == configv1.OperatorAvailable && c.Status == configv1.ConditionTrue) || (c.Type == configv1.OperatorDegraded && c.Status == configv1.ConditionFalse) {
				ok++
			}
		}
		if ok != 2 {
			badOperators = append(badOperators, co.Name)
		}
	}
	return notReady, badOperators
}

// nodeCSRs are the box's CSRs by kind: client (asked by the bootstrapper)
// or serving, each with the node it names.
type nodeCSR struct {
	name, kind, node string
	approved, signed bool
	csr              certificatesv1.CertificateSigningRequest
}

func listNodeCSRs(t *testing.T, b *box.Box) []nodeCSR {
	t.Helper()
	var out []nodeCSR
	for name, c := range csrs(t, b) {
		req, err := csr.ParseRequest(c.Spec.Request)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		n := nodeCSR{name: name, node: strings.TrimPrefix(req.Subject.CommonName, "system:node:"), approved: approval(c) != nil,
			signed: len(c.Status.Certificate) > 0, csr: c}
		switch c.Spec.SignerName {
		case certificatesv1.KubeAPIServerClientKubeletSignerName:
			n.kind = "client"
		case certificatesv1.KubeletServingSignerName:
			n.kind = "serving"
		}
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// plantTakeover creates, as the node-bootstrapper, a client CSR for a node
// that claims system:masters too: never to be approved.
func plantTakeover(t *testing.T, b *box.Box, node string) string {
	t.Helper()
	c := csrtest.Case{Kind: "takeover", Identity: csrtest.Bootstrapper, Signer: certificatesv1.KubeAPIServerClientKubeletSignerName,
		Usages:  []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth},
		Request: csrtest.Request(csrtest.Subject{CN: "system:node:" + node, O: []string{"system:nodes", "system:masters"}})}
	return createCSRs(t, b, c)[0]
}

func waitNoDebugNamespaces(t *testing.T, b *box.Box) {
	t.Helper()
	waitNoLeftovers(t, context.Background(), b.Kube)
}

// ---- the box's restarting nodes and cluster operators ----

// A kubelet whose certificates expired (OpenShift 4.5 documentation, Backup
// and restore, 5.4 "Recovering from expired control plane certificates") turns NotReady and
// asks, as the node-bootstrapper with exactly its groups, for a client
// certificate; once that is approved and signed, as the node for a serving
// certificate for its own addresses; it is Ready only when both are
// issued. Meanwhile the cluster operators that depend on the node are
// Degraded, and they recover after it is Ready. Approvals here are made
// through the API by hand, as an administrator would with oc adm
// certificate approve.
func TestStartupBoxKubeletAsksForCertificatesThroughCSRs(t *testing.T) {
	t.Parallel()
	b := boxtest.StartBox(t, box.Options{OperatorSettle: time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, bad := clusterReady(t, b); len(bad) != 0 || len(box.ClusterOperatorNames) < 30 {
		t.Fatalf("a new box's cluster operators: %d, not available or degraded: %v", len(box.ClusterOperatorNames), bad)
	}

	if err := b.ExpireKubeletCertificates(ctx, "master-2"); err != nil {
		t.Fatal(err)
	}
	var client nodeCSR
	err := box.WaitFor(ctx, 30*time.Second, "a client CSR for master-2", func(context.Context) (bool, string, error) {
		for _, c := range listNodeCSRs(t, b) {
			if c.kind == "client" && c.node == "master-2" {
				client = c
				return true, "", nil
			}
		}
		return false, "none", nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if c := client.csr; c.Spec.Username != csr.BootstrapperUser || !sets.New(c.Spec.Groups...).Equal(sets.New(csr.BootstrapperGroups...)) {
		t.Errorf("client CSR requested by %s %v", c.Spec.Username, c.Spec.Groups)
	}
	notReady, bad := clusterReady(t, b)
	if !sets.New(notReady...).Equal(sets.New("master-2")) {
		t.Errorf("not Ready while waiting for the client certificate: %v", notReady)
	}
	err = box.WaitFor(ctx, 10*time.Second, "operators degraded by master-2", func(context.Context) (bool, string, error) {
		_, bad = clusterReady(t, b)
		return sets.New(bad...).HasAll("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"), fmt.Sprint(bad), nil
	})
	if err != nil {
		t.Error(err)
	}
	// Nothing happens without an approval.
	time.Sleep(time.Second)
	for _, c := range listNodeCSRs(t, b) {
		if c.kind == "serving" {
			t.Fatalf("a serving CSR before the client CSR was approved: %s", c.name)
		}
	}
	approve := func(c nodeCSR) {
		t.Helper()
		obj := c.csr.DeepCopy()
		obj.Status.Conditions = append(obj.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
			Type: certificatesv1.CertificateApproved, Status: corev1.ConditionTrue, Reason: "ByHand", LastUpdateTime: metav1.Now()})
		if _, err := b.Kube.CertificatesV1().CertificateSigningRequests().UpdateApproval(ctx, obj.Name, obj, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	approve(client)
	var serving nodeCSR
	err = box.WaitFor(ctx, 30*time.Second, "the client certificate signed and a serving CSR", func(context.Context) (bool, string, error) {
		signed := false
		for _, c := range listNodeCSRs(t, b) {
			if c.name == client.name {
				signed = c.signed
			}
			if c.kind == "serving" && c.node == "master-2" {
				serving = c
			}
		}
		return signed && serving.name != "", fmt.Sprintf("client signed %v, serving %q", signed, serving.name), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if c := serving.csr; c.Spec.Username != "system:node:master-2" || !sets.New(c.Spec.Groups...).Equal(sets.New(csr.NodeGroups...)) {
		t.Errorf("serving CSR requested by %s %v", c.Spec.Username, c.Spec.Groups)
	}
	req, _ := csr.ParseRequest(serving.csr.Spec.Request)
	if len(req.DNSNames) != 1 || req.DNSNames[0] != "master-2" || len(req.IPAddresses) != 1 || !req.IPAddresses[0].Equal(b.Node("master-2").IP) {
		t.Errorf("serving CSR names %v %v", req.DNSNames, req.IPAddresses)
	}
	time.Sleep(time.Second)
	boxtest.AssertNodeReady(t, b, "master-2", corev1.ConditionUnknown)
	approve(serving)
	err = box.WaitFor(ctx, 30*time.Second, "master-2 Ready and every operator recovered", func(context.Context) (bool, string, error) {
		notReady, bad := clusterReady(t, b)
		return len(notReady) == 0 && len(bad) == 0, fmt.Sprintf("not Ready %v, operators %v", notReady, bad), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The serving certificate the kubelet now presents is the one issued.
	block, _ := pem.Decode(csrs(t, b)[serving.name].Status.Certificate)
	issued, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if issued.Subject.CommonName != "system:node:master-2" || !issued.IPAddresses[0].Equal(b.Node("master-2").IP) {
		t.Errorf("issued serving certificate: %v %v", issued.Subject, issued.IPAddresses)
	}
	conn, err := tlsDialKubelet(b.Node("master-2").IP)
	if err != nil {
		t.Fatal(err)
	}
	if !conn.Equal(issued) {
		t.Errorf("the kubelet presents %v, not the issued certificate", conn.Subject)
	}
	if r := tools.Run(t, b, "", "kubectl", "exec", "-n", "openshift-etcd", "etcd-master-2", "-c", "etcdctl", "--", "true"); r.Code != 0 {
		t.Errorf("exec through master-2's kubelet: %s", r)
	}
}

// ---- startup that times out ----

// A worker that stays down: startup approves what it can, waits, and at
// --timeout exits 3 with a report naming the node, the cluster operators it
// holds back and the forged CSR it left pending; --dry-run says the same
// and changes nothing. Once the worker is powered on, startup approves its
// CSRs and exits 0.
func TestStartupTimesOutWithAReportAndThenSucceeds(t *testing.T) {
	t.Parallel()
	b := boxtest.StartBox(t, box.Options{Workers: 1, NodeCSRsOnBoot: true, OperatorSettle: time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := b.StopMachine(ctx, "worker-0"); err != nil {
		t.Fatal(err)
	}
	forged := plantTakeover(t, b, "worker-0")

	r := tools.Run(t, b, "", "kubectl-recover", "startup", "--dry-run", "-o", "json")
	var rep struct {
		power.State
		DryRun   bool           `json:"dryRun"`
		Phase    power.Phase    `json:"phase"`
		CSRs     []csr.Decision `json:"csrs"`
		TimedOut bool           `json:"timedOut"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil {
		t.Fatalf("%v: %s", err, r)
	}
	if r.Code != 3 || !rep.DryRun || rep.Phase != power.WaitWorkers || len(rep.Workers.NotReady) != 1 || len(rep.CSRs) != 1 || rep.CSRs[0].Name != forged {
		t.Fatalf("startup --dry-run with worker-0 down: %+v\n%s", rep, r)
	}

	r = tools.Run(t, b, "", "kubectl-recover", "startup", "--timeout", "6s", "--interval", "500ms")
	if r.Code != 3 || !strings.Contains(r.Stderr, "timed out after 6s before the cluster was up (waiting for worker nodes)") {
		t.Fatalf("startup with worker-0 down: %s", r)
	}
	for _, want := range []string{
		"every control-plane node Ready; 0 of 1 worker nodes Ready (not Ready: worker-0)",
		"Worker nodes Ready: 0 of 1 (not Ready: worker-0)",
		"Control-plane nodes Ready: 3 of 3",
		"  ingress (Available=False, Degraded=True): ",
		"CSRs left pending: 1\n  " + forged + " (client-bootstrap, requested by " + csr.BootstrapperUser + "): WrongOrganization: ",
	} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("the report lacks %q:\n%s", want, r.Stdout)
		}
	}
	if approval(csrs(t, b)[forged]) != nil {
		t.Fatalf("the forged CSR was approved")
	}

	// The worker boots; its certificates expired: two CSRs to approve.
	if err := b.PowerOn(ctx, "worker-0"); err != nil {
		t.Fatal(err)
	}
	boxtest.AssertNodeReady(t, b, "worker-0", corev1.ConditionUnknown)
	r = tools.Run(t, b, "", "kubectl-recover", "startup", "--timeout", "90s", "--interval", "500ms")
	if r.Code != 0 || !strings.Contains(r.Stdout, "The cluster is up: 3 control-plane and 1 worker node(s) Ready, 33 of 33 cluster operators available and not degraded; approved 2 CSR(s).") {
		t.Fatalf("startup once worker-0 is on: %s", r)
	}
	checkApprovedExactlyTheNodesCSRs(t, b, []string{"worker-0"}, forged)
}

// checkApprovedExactlyTheNodesCSRs checks that every CSR but forged is a
// node's, approved by oc-recover and signed: one client and one serving
// CSR for each of nodes; and that forged is still pending.
func checkApprovedExactlyTheNodesCSRs(t *testing.T, b *box.Box, nodes []string, forged string) {
	t.Helper()
	want := map[string]int{}
	for _, n := range nodes {
		want["client/"+n], want["serving/"+n] = 1, 1
	}
	got := map[string]int{}
	for _, c := range listNodeCSRs(t, b) {
		a := approval(c.csr)
		if c.name == forged {
			if a != nil || c.signed {
				t.Errorf("the forged CSR %s was approved", c.name)
			}
			continue
		}
		if a == nil || a.Reason != csr.ApprovalReason || !c.signed {
			t.Errorf("%s (%s for %s): approval %v, signed %v", c.name, c.kind, c.node, a, c.signed)
			continue
		}
		got[c.kind+"/"+c.node]++
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("approved CSRs: %v, want %v", got, want)
	}
}

// ---- the whole cycle ----

// OpenShift 4.5 documentation, Backup and restore, chapter 3 "Shutting down
// the cluster gracefully" and chapter 4 "Restarting the cluster gracefully",
// end to end: a backup, `shutdown` schedules
// `shutdown -h 1` on every node (workers first) and removes its debug pods;
// every host powers off a (box) minute later. The administrator powers the
// machines on; their kubelets' certificates have expired. `startup`
// approves exactly the valid CSRs (not the forged one planted meanwhile),
// waits for the control plane, the worker and the cluster operators, and
// exits 0.
func TestShutdownAndStartupFullCycle(t *testing.T) {
	b := boxtest.StartBox(t, box.Options{Workers: 1, MinuteScale: 8 * time.Second, NodeCSRsOnBoot: true})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	backupDir := t.TempDir()
	if r := tools.Run(t, b, "", "kubectl-recover", "backup", "--output-dir", filepath.Join(backupDir, "before-shutdown")); r.Code != 0 {
		t.Fatalf("backup: %s", r)
	}

	// Ctrl-C once the workers' shutdowns are scheduled, as the control
	// plane's are being scheduled: every shutdown a host took is taken back
	// before its (8 s) minute is up, and the debug pods are removed.
	out, sent := runUntil(t, b, func(line string) bool {
		return strings.HasPrefix(line, "Scheduling `shutdown -h 1` on 3 control-plane node(s)")
	}, syscall.SIGINT, "shutdown", "--backup-dir", backupDir, "--yes")
	if !sent || !strings.Contains(out, "Cancelling the ") || !strings.Contains(out, "(interrupted)") || strings.Contains(out, "(exit: <nil>)") {
		t.Fatalf("Ctrl-C while scheduling the control plane's shutdowns:\n%s", out)
	}
	assertNothingScheduled(t, b)
	waitNoDebugNamespaces(t, b)
	t.Logf("interrupted shutdown:\n%s", out)

	start := time.Now()
	r := tools.Run(t, b, "", "kubectl-recover", "shutdown", "--backup-dir", backupDir, "--yes")
	if r.Code != 0 {
		t.Fatalf("shutdown: %s", r)
	}
	scheduled := regexp.MustCompile(`(?m)^(\S+)\s+(worker|control-plane)\s+Scheduled\s+Shutdown scheduled for `)
	var order []string
	for _, m := range scheduled.FindAllStringSubmatch(r.Stdout, -1) {
		order = append(order, m[1])
	}
	if fmt.Sprint(order) != "[worker-0 master-0 master-1 master-2]" {
		t.Errorf("report: nodes scheduled %v:\n%s", order, r)
	}
	for _, want := range []string{"Backup: " + filepath.Join(backupDir, "before-shutdown"), "Kubelet signer (openshift-kube-apiserver-operator/kube-apiserver-to-kubelet-signer) expires ",
		"Every node powers off within a minute", "then run `kubectl recover startup`"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("shutdown output lacks %q:\n%s", want, r)
		}
	}
	if elapsed := time.Since(start); elapsed > 8*time.Second {
		t.Fatalf("shutdown took %s, longer than the box's minute: the test cannot tell what happened when", elapsed)
	}
	for _, n := range nodeNames(b) {
		if !b.MachineOn(n) {
			t.Errorf("%s powered off before the minute was up", n)
		}
	}
	// The debug pods are gone while the API still answers.
	waitNoDebugNamespaces(t, b)
	err := box.WaitFor(ctx, 30*time.Second, "every host powered off", func(context.Context) (bool, string, error) {
		var on []string
		for _, n := range nodeNames(b) {
			if b.MachineOn(n) {
				on = append(on, n)
			}
		}
		return len(on) == 0, "on: " + strings.Join(on, ", "), nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// The administrator powers the machines on.
	if err := b.PowerOn(ctx); err != nil {
		t.Fatal(err)
	}
	notReady, bad := clusterReady(t, b)
	if len(notReady) != 4 || len(bad) == 0 {
		t.Fatalf("right after the power-on: not Ready %v, operators not available %v", notReady, bad)
	}
	forged := plantTakeover(t, b, "master-1")
	r = tools.Run(t, b, "", "kubectl-recover", "startup", "--timeout", "100s", "--interval", "500ms")
	if r.Code != 0 {
		t.Fatalf("startup: %s", r)
	}
	t.Logf("startup: %s", r)
	progress := regexp.MustCompile(`(?m)^\d of 3 control-plane nodes Ready.*; approved \d+ CSR\(s\)$`)
	operators := regexp.MustCompile(`(?m)^every node Ready; \d+ of 33 cluster operators available and not degraded \(waiting for .+\)$`)
	if !progress.MatchString(r.Stdout) || !operators.MatchString(r.Stdout) {
		t.Errorf("startup shows no progress:\n%s", r)
	}
	if !strings.Contains(r.Stdout, "Left pending CSR "+forged+" (client-bootstrap") || !strings.Contains(r.Stdout, "approved 8 CSR(s).") {
		t.Errorf("startup output:\n%s", r)
	}
	notReady, bad = clusterReady(t, b)
	if len(notReady) != 0 || len(bad) != 0 {
		t.Errorf("after startup: not Ready %v, operators not available %v", notReady, bad)
	}
	checkApprovedExactlyTheNodesCSRs(t, b, nodeNames(b), forged)
	if err := b.WaitForEtcdMembersAvailable(ctx, "3 members are available"); err != nil {
		t.Error(err)
	}
	waitNoDebugNamespaces(t, b)
}

// tlsDialKubelet returns the certificate the kubelet at ip presents.
func tlsDialKubelet(ip net.IP) (*x509.Certificate, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", net.JoinHostPort(ip.String(), "10250"),
		&tls.Config{InsecureSkipVerify: true}) // only to read what it presents
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0], nil
}
