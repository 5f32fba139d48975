package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/oc-recover/oc-recover/pkg/csr"
	"github.com/oc-recover/oc-recover/pkg/csr/csrtest"
	"github.com/oc-recover/oc-recover/test/box"
	"github.com/oc-recover/oc-recover/test/csrload"
)

// BenchmarkCSRApprove approves 1,000 pending CSRs (800 valid, 200 forged
// of every kind the apiserver stores, created as their requesters) with
// `oc recover csr approve`, and the same 800 valid ones, created afresh,
// with a loop of `kubectl certificate approve <name>`, in the same run.
// The valid CSRs: a renewal and a serving CSR for each of 350 Ready nodes,
// a bootstrapper CSR for each of 50 not-Ready nodes and of 50 new nodes
// announced by Machines. Fails if a forged CSR is approved.
//
// (One `kubectl certificate approve` with all 800 names is slower than the
// loop: kubectl's default client-side limit of 5 requests a second makes
// it take over 5 minutes.)
func BenchmarkCSRApprove(b *testing.B) {
	ctx := context.Background()
	bin := b.TempDir()
	for name, pkg := range map[string]string{"kubectl": "k8s.io/kubernetes/cmd/kubectl", "kubectl-recover": "github.com/oc-recover/oc-recover/cmd/oc-recover"} {
		if out, err := exec.Command("go", "build", "-o", filepath.Join(bin, name), pkg).CombinedOutput(); err != nil {
			b.Fatalf("build %s: %v\n%s", name, err, out)
		}
	}
	bx, err := box.Start(ctx, box.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer bx.Stop()

	hosts := csrtest.Hosts{
		Ready:     csrtest.NumberedHosts("bench-ready", 350, 1),
		NotReady:  csrtest.NumberedHosts("bench-not-ready", 50, 1000),
		Announced: csrtest.NumberedHosts("bench-new", 50, 2000),
	}
	start := time.Now()
	steps := []func() error{
		func() error { return csrload.GrantCSRCreation(ctx, bx.Kube) },
		func() error { return csrload.CreateNodes(ctx, bx.Kube, hosts.Ready, true, 32) },
		func() error { return csrload.CreateNodes(ctx, bx.Kube, hosts.NotReady, false, 32) },
		func() error {
			return csrload.CreateMachines(ctx, bx.Machine, hosts.Ready[:len(hosts.Ready)/2], true, 32)
		},
		func() error { return csrload.CreateMachines(ctx, bx.Machine, hosts.NotReady, true, 32) },
		func() error { return csrload.CreateMachines(ctx, bx.Machine, hosts.Announced, false, 32) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			b.Fatal(err)
		}
	}
	valid := csrtest.Valid(hosts)
	forged := csrtest.Forged(hosts, 200, true)
	cases := append(append([]csrtest.Case{}, valid...), forged...)
	b.Logf("%d nodes and %d machines in %v; %d valid and %d forged CSRs", len(hosts.Ready)+len(hosts.NotReady),
		len(hosts.Ready)/2+len(hosts.NotReady)+len(hosts.Announced), time.Since(start).Round(time.Second), len(valid), len(forged))

	api := bx.Kube.CertificatesV1().CertificateSigningRequests()
	// fresh deletes every CSR and creates the corpus again; it returns the
	// valid CSRs' names and the forged ones'.
	fresh := func() (validNames, forgedNames []string) {
		if err := api.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
			b.Fatal(err)
		}
		if err := box.WaitFor(ctx, time.Minute, "every CSR deleted", func(ctx context.Context) (bool, string, error) {
			list, err := api.List(ctx, metav1.ListOptions{})
			if err != nil {
				return false, err.Error(), nil
			}
			return len(list.Items) == 0, fmt.Sprintf("%d left", len(list.Items)), nil
		}); err != nil {
			b.Fatal(err)
		}
		names, err := csrload.Create(ctx, bx.Admin, cases, 32)
		if err != nil {
			b.Fatal(err)
		}
		return names[:len(valid)], names[len(valid):]
	}
	// approvedCount counts the approved CSRs among names.
	approvedCount := func(names []string) int {
		list, err := api.List(ctx, metav1.ListOptions{})
		if err != nil {
			b.Fatal(err)
		}
		want := map[string]bool{}
		for _, n := range names {
			want[n] = true
		}
		n := 0
		for _, c := range list.Items {
			for _, cond := range c.Status.Conditions {
				if want[c.Name] && cond.Type == certificatesv1.CertificateApproved {
					n++
				}
			}
		}
		return n
	}
	home := b.TempDir()
	runTool := func(name string, args ...string) (time.Duration, string, int) {
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.Env = append(os.Environ(), "KUBECONFIG="+bx.Kubeconfig, "HOME="+home)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		t0 := time.Now()
		err := cmd.Run()
		d := time.Since(t0)
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			b.Fatalf("%s %v: %v", name, args, err)
		}
		if code != 0 && (name != "kubectl-recover" || code != 3) {
			b.Fatalf("%s %v: exit %d\n%s", name, args, code, stderr.String())
		}
		return d, stdout.String(), code
	}
	runTool("kubectl", "get", "csr") // warm kubectl's discovery cache

	b.ResetTimer()
	var ours, loop time.Duration
	forgedApproved := 0
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		validNames, forgedNames := fresh()
		b.StartTimer()
		d, out, code := runTool("kubectl-recover", "csr", "approve", "-o", "json")
		ours += d
		b.StopTimer()
		var rep csr.Report
		if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 3 || len(rep.CSRs) != len(cases) || rep.Approved != len(valid) {
			b.Fatalf("csr approve: exit %d, %v, %d listed, %d approved", code, err, len(rep.CSRs), rep.Approved)
		}
		if got := approvedCount(validNames); got != len(valid) {
			b.Fatalf("csr approve approved %d of %d valid CSRs", got, len(valid))
		}
		forgedApproved += approvedCount(forgedNames)

		validNames, _ = fresh()
		b.StartTimer()
		t0 := time.Now()
		for _, name := range validNames {
			runTool("kubectl", "certificate", "approve", name)
		}
		loop += time.Since(t0)
		b.StopTimer()
		if got := approvedCount(validNames); got != len(valid) {
			b.Fatalf("the kubectl loop approved %d of %d", got, len(valid))
		}
		b.StartTimer()
	}
	b.StopTimer()
	if forgedApproved != 0 {
		b.Errorf("%d forged CSRs approved", forgedApproved)
	}
	n := time.Duration(b.N)
	b.ReportMetric(float64(forgedApproved), "forged-approved")
	b.ReportMetric(loop.Seconds()/ours.Seconds(), "x-faster-than-kubectl-loop")
	b.Logf("per run: csr approve (1,000 pending, 800 approved): %v; kubectl certificate approve loop over the 800 valid names: %v",
		(ours / n).Round(time.Millisecond), (loop / n).Round(time.Millisecond))
}
