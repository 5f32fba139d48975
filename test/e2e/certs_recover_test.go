package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/sets"

	"github.com/oc-recover/oc-recover/pkg/certs"
	"github.com/oc-recover/oc-recover/pkg/csr"
	"github.com/oc-recover/oc-recover/pkg/csr/csrtest"
	"github.com/oc-recover/oc-recover/test/box"
	"github.com/oc-recover/oc-recover/test/csrload"
	"github.com/oc-recover/oc-recover/test/internal/boxtest"
)

// startRecover starts the plugin in the background; wait returns what it
// printed and how it exited.
func startRecover(t *testing.T, b *box.Box, args ...string) (wait func() boxtest.Result) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	cmd := exec.CommandContext(ctx, filepath.Join(tools.BinDir, "kubectl-recover"), args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+b.Kubeconfig, "HOME="+t.TempDir())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	return func() boxtest.Result {
		defer cancel()
		err := cmd.Wait()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return boxtest.Result{Stdout: stdout.String(), Stderr: stderr.String(), Code: code}
	}
}

func recoverReport(t *testing.T, r boxtest.Result) certs.Report {
	t.Helper()
	var rep certs.Report
	if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil {
		t.Fatalf("certs recover -o json: %v\n%s", err, r)
	}
	return rep
}

// forgedAlongside are forged CSRs of every kind the apiserver stores whose
// refusal does not depend on whether a node is Ready (the post-outage rule
// legitimately turns a bootstrapper CSR for a dead node into one to
// approve, and an older duplicate depends on what else is pending).
func forgedAlongside(hosts csrtest.Hosts) []csrtest.Case {
	var out []csrtest.Case
	for _, c := range csrtest.Forged(hosts, 2*len(csrtest.Kinds()), true) {
		if c.Want != csr.NodeReady && c.Want != csr.Superseded {
			out = append(out, c)
		}
	}
	return out
}

// OpenShift 4.12 documentation, Backup and restore, 5.4.3 "Recovering from
// expired control plane certificates", end to end: the cluster was shut
// down past its certificates' expiry (its 30-day certificates, the
// kubelets', and a certificate the administrator provided). Right after
// the power-on every node still says Ready (the node lifecycle controller
// waits its grace period), the kubelets ask new certificates through CSRs,
// the kube-apiserver operator reports its expired rotations Degraded, and
// forged CSRs are planted alongside. `certs recover --dry-run` approves
// nothing. `certs recover` approves exactly the kubelets' CSRs, once it has
// watched each silent kubelet for longer than its lease (the post-outage
// rule), not one forged CSR, nor a well-formed bootstrapper CSR for a node
// whose kubelet is back; waits for the rotations to be regenerated and the
// operators to settle; and reports the user-provided certificate still
// expired (exit 3). Once that certificate is replaced, it exits 0.
func TestCertsRecoverAfterShutdownPastExpiry(t *testing.T) {
	t.Parallel()
	b := boxtest.StartBox(t, box.Options{Workers: 1, OperatorSettle: time.Second, CertRegeneration: 20 * time.Second,
		NodeLeaseDuration: 4 * time.Second, NodeMonitorGracePeriod: 3 * time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if err := csrload.GrantCSRCreation(ctx, b.Kube); err != nil {
		t.Fatal(err)
	}
	var hosts csrtest.Hosts
	for _, n := range b.NodeList() {
		hosts.Ready = append(hosts.Ready, csrtest.Host{Name: n.Name, IP: n.IP})
	}

	if err := b.ShutDownPastCertificateExpiry(ctx, "openshift-config/custom-api-cert"); err != nil {
		t.Fatal(err)
	}
	if err := b.PowerOn(ctx); err != nil {
		t.Fatal(err)
	}
	notReady, _ := clusterReady(t, b)
	if len(notReady) != 0 {
		t.Fatalf("right after the power-on the nodes should still say Ready (stale): not Ready %v", notReady)
	}
	forged := sets.New(createCSRs(t, b, forgedAlongside(hosts)...)...)
	if forged.Len() < 20 {
		t.Fatalf("only %d forged CSRs", forged.Len())
	}

	// A dry run looks once: nothing approved, and the nodes still count
	// Ready (that they are stale takes watching).
	r := tools.Run(t, b, "", "kubectl-recover", "certs", "recover", "--dry-run", "-o", "json")
	rep := recoverReport(t, r)
	if r.Code != 3 || !rep.DryRun || rep.Approved != 0 || rep.Phase != certs.WaitRotations || len(rep.Conditions) != 5 {
		t.Errorf("dry run right after the power-on: exit %d, %+v\n%s", r.Code, rep, r.Stderr)
	}
	for name, c := range csrs(t, b) {
		if approval(c) != nil {
			t.Fatalf("the dry run approved %s", name)
		}
	}

	wait := startRecover(t, b, "certs", "recover", "--yes", "--timeout", "3m", "--interval", "500ms", "-o", "json")
	// Once every node is back, a bootstrapper asks a certificate for
	// master-0 while the recovery still waits for the rotations: its kubelet
	// renews its lease, so this is a takeover.
	err := box.WaitFor(ctx, 2*time.Minute, "every node Ready", func(context.Context) (bool, string, error) {
		notReady, _ := clusterReady(t, b)
		return len(notReady) == 0 && len(approvedKubeletCSRs(t, b, forged)) == 8, fmt.Sprint(notReady), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	takeover := createCSRs(t, b, csrtest.Bootstrap(hosts.Ready[0]))[0]
	forged.Insert(takeover)
	r = wait()
	t.Logf("certs recover: exit %d\nstderr:\n%s", r.Code, r.Stderr)
	rep = recoverReport(t, r)

	if r.Code != 3 || rep.Phase != certs.Recovered || rep.Approved != 8 || !strings.Contains(r.Stderr, "the control plane has recovered, but 1 certificate check(s) still fail") {
		t.Errorf("certs recover: exit %d, phase %s, approved %d", r.Code, rep.Phase, rep.Approved)
	}
	if len(rep.StillExpired) != 1 || rep.StillExpired[0].ID != "certs.unmanaged" || !strings.Contains(strings.Join(rep.StillExpired[0].Evidence, "\n"), "openshift-config/custom-api-cert") {
		t.Errorf("still expired: %+v", rep.StillExpired)
	}
	if p := strings.Join(rep.Pointers, "\n"); !strings.Contains(p, "oc adm ocp-certificates regenerate-leaf") || !strings.Contains(p, "Replacing the default ingress certificate") {
		t.Errorf("pointers: %s", p)
	}
	for _, want := range []string{"[1/4] Waiting for the API", "[2/4] Approving the nodes' CSRs", "[3/4] Waiting for the certificate rotations", "[4/4] Checking what is still expired",
		"Left pending CSR ", "NodeReady", "its Ready=True is stale: its kubelet has not renewed its lease kube-node-lease/", "waiting for 5 condition(s) to clear"} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("progress lacks %q", want)
		}
	}
	stale := 0
	for _, d := range rep.CSRs {
		if d.Outcome == csr.Approved && d.Kind == csr.ClientBootstrap && strings.Contains(d.Reason, "its Ready=True is stale") {
			stale++
		}
		if d.Name == takeover && (d.Outcome != csr.Pending || d.Category != csr.NodeReady) {
			t.Errorf("the takeover CSR: %+v", d)
		}
	}
	if stale != 4 {
		t.Errorf("%d bootstrapper CSRs approved by the post-outage rule, want 4", stale)
	}

	// What the cluster shows: every node Ready, every operator settled, no
	// rotation failing, exactly the kubelets' CSRs approved and signed.
	notReady, bad := clusterReady(t, b)
	if len(notReady) != 0 || len(bad) != 0 || len(failingCertRotations(t, b)) != 0 {
		t.Errorf("after certs recover: not Ready %v, operators %v, rotations %v", notReady, bad, failingCertRotations(t, b))
	}
	got := approvedKubeletCSRs(t, b, forged)
	want := map[string]bool{}
	for _, h := range hosts.Ready {
		want["client/"+h.Name], want["serving/"+h.Name] = true, true
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("approved kubelet CSRs %v, want %v", got, want)
	}
	approvedForged := 0
	for name, c := range csrs(t, b) {
		if forged.Has(name) && approval(c) != nil {
			approvedForged++
			t.Errorf("forged CSR %s approved", name)
		}
	}
	t.Logf("%d forged CSRs planted, %d approved", forged.Len(), approvedForged)

	// As a table; then, with the user's certificate replaced, exit 0.
	r = tools.Run(t, b, "", "kubectl-recover", "certs", "recover", "--yes", "--timeout", "1m")
	for _, want := range []string{"The control plane has recovered: 3 control-plane and 1 worker node(s) Ready, no certificate rotation failing, 33 of 33 cluster operators available",
		"Certificates still expired: 1 check(s) fail", "openshift-config/custom-api-cert", "What to do:", "oc adm ocp-certificates regenerate-top-level"} {
		if r.Code != 3 || !strings.Contains(r.Stdout, want) {
			t.Errorf("certs recover again lacks %q: %s", want, r)
		}
	}
	if err := b.Kube.CoreV1().Secrets("openshift-config").Delete(ctx, "custom-api-cert", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	r = tools.Run(t, b, "", "kubectl-recover", "certs", "recover", "--yes", "--timeout", "1m")
	if r.Code != 0 || !strings.Contains(r.Stdout, "No certificate check fails or warns.") {
		t.Errorf("certs recover with nothing expired: %s", r)
	}
	waitNoDebugNamespaces(t, b)
}

// approvedKubeletCSRs are the CSRs approved by oc-recover and signed that
// are not forged, by kind and node.
func approvedKubeletCSRs(t *testing.T, b *box.Box, forged sets.Set[string]) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for name, c := range csrs(t, b) {
		if forged.Has(name) {
			continue // some do not parse
		}
		req, err := csr.ParseRequest(c.Spec.Request)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		kind := map[string]string{csr.SignerClient: "client", csr.SignerServing: "serving"}[c.Spec.SignerName]
		if a := approval(c); a != nil && a.Reason == csr.ApprovalReason && len(c.Status.Certificate) > 0 {
			out[kind+"/"+strings.TrimPrefix(req.Subject.CommonName, csr.NodeUserPrefix)] = true
		}
	}
	return out
}

func failingCertRotations(t *testing.T, b *box.Box) []string {
	t.Helper()
	o, err := b.Operator.OperatorV1().KubeAPIServers().Get(context.Background(), "cluster", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range certs.DegradedRotations("kubeapiserver/cluster", o.Status.Conditions) {
		out = append(out, c.Type)
	}
	return out
}

// OpenShift 4.3: the automatic part is refused as every command refuses
// 4.3, nothing changes, and the recovery API server procedure is printed
// rendered with the cluster's release image and nodes.
func TestCertsRecoverOn43PrintsTheProcedure(t *testing.T) {
	t.Parallel()
	b := boxtest.StartBox(t, box.Options{Version: "4.3.40", Workers: 1})
	cv, err := b.Config.ConfigV1().ClusterVersions().Get(context.Background(), "version", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	before := eraState(t, b)
	r := tools.Run(t, b, "", "kubectl-recover", "certs", "recover", "--yes", "--timeout", "1m")
	if r.Code != 1 || !strings.Contains(r.Stderr, "refusing, nothing was done: this cluster runs OpenShift 4.3.40") {
		t.Errorf("certs recover on 4.3: %s", r)
	}
	for _, want := range []string{
		`OpenShift Container Platform 4.3 documentation, Backup and restore, 3.4 "Recovering from expired control plane certificates"`,
		"`kubectl recover certs recover` does not do it for you", "On master-0, as root:", "RELEASE_IMAGE=" + cv.Status.Desired.Image,
		"recovery-apiserver create", "regenerate-certificates", "on master-1, master-2 too", "master-1, master-2, worker-0", "recovery-apiserver destroy", "Check the clocks first",
	} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("the 4.3 procedure lacks %q:\n%s", want, r.Stdout)
		}
	}
	if strings.Contains(r.Stdout+r.Stderr, "seed") {
		t.Errorf("the output speaks of seeds")
	}
	r = tools.Run(t, b, "", "kubectl-recover", "certs", "recover", "-o", "json")
	if rep := recoverReport(t, r); r.Code != 1 || rep.Phase != certs.Refused || len(rep.Procedure) < 10 {
		t.Errorf("certs recover -o json on 4.3: %s", r)
	}
	if after := eraState(t, b); after != before {
		t.Errorf("certs recover changed a 4.3 cluster:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// An API that never answers: at --timeout, exit 1 with the host procedure
// (console access, the clocks, the three containers' logs).
func TestCertsRecoverWithoutTheAPI(t *testing.T) {
	t.Parallel()
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := "apiVersion: v1\nkind: Config\nclusters:\n- cluster: {server: \"https://127.0.0.1:1\"}\n  name: gone\ncontexts:\n- context: {cluster: gone, user: admin}\n  name: gone\n" +
		"current-context: gone\nusers:\n- name: admin\n  user: {token: not-a-token}\n"
	if err := os.WriteFile(kubeconfig, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r := tools.Run(t, shared, "", "kubectl-recover", "--kubeconfig", kubeconfig, "certs", "recover", "--yes", "--timeout", "4s", "--interval", "500ms")
	if r.Code != 1 || time.Since(start) > 30*time.Second || !strings.Contains(r.Stderr, "the API never answered within 4s") {
		t.Errorf("certs recover without an API: %s", r)
	}
	for _, want := range []string{"[1/4] Waiting for the API", "The API at https://127.0.0.1:1 did not answer within 4s", "console access is needed",
		"Check the clocks first", "crictl ps -a -q --name '^kube-apiserver$'", "crictl ps -a -q --name '^kube-apiserver-cert-regeneration-controller$'",
		"crictl ps -a -q --name '^etcd$'", "Nothing answers TLS at https://127.0.0.1:1"} {
		if !strings.Contains(r.Stdout+r.Stderr, want) {
			t.Errorf("lacks %q:\n%s", want, r)
		}
	}
}
