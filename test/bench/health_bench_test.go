package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/oc-recover/oc-recover/pkg/csr/csrtest"
	"github.com/oc-recover/oc-recover/pkg/health"
	"github.com/oc-recover/oc-recover/test/box"
	"github.com/oc-recover/oc-recover/test/csrload"
)

// Targets of `oc recover health` at scale: a fixed number of API requests
// whatever the cluster's size, and a wall time close to that of reading
// the nodes, cluster operators and CSRs with kubectl.
const (
	healthMaxRequests = 30
	healthMaxRatio    = 1.5
)

// nameToken splits a request URL into the names it could mention.
var nameToken = regexp.MustCompile(`[^a-z0-9.-]+`)

// latency is a request's time in a -v=6 log line that requestLine matches.
var latency = regexp.MustCompile(`milliseconds=(\d+)`)

// BenchmarkHealthAtScale runs `health` on a box with 5 control-plane nodes,
// 5,000 worker Node and Machine objects and 5,000 pending CSRs (a client
// certificate renewal of each worker, asked as the worker): it counts the
// plugin's API requests (from its -v=6 log) and compares its wall time with
// `kubectl get nodes,clusteroperators,csr -o json` in the same run. There
// is no backup in --backup-dir, so health exits 1. Targets: at most 30
// requests, none naming a worker, its Machine or a CSR; at most 1.5x
// kubectl's time.
func BenchmarkHealthAtScale(b *testing.B) {
	ctx := context.Background()
	bin := b.TempDir()
	for name, pkg := range map[string]string{"kubectl": "k8s.io/kubernetes/cmd/kubectl", "kubectl-recover": "github.com/oc-recover/oc-recover/cmd/oc-recover"} {
		if out, err := exec.Command("go", "build", "-o", filepath.Join(bin, name), pkg).CombinedOutput(); err != nil {
			b.Fatalf("build %s: %v\n%s", name, err, out)
		}
	}
	bx, err := box.Start(ctx, box.Options{Masters: 5})
	if err != nil {
		b.Fatal(err)
	}
	defer bx.Stop()
	start := time.Now()
	if err := createWorkers(ctx, bx.Admin, bx.InfraID, 5000); err != nil {
		b.Fatal(err)
	}
	b.Logf("created 5,000 worker nodes and machines in %v", time.Since(start).Round(time.Second))
	start = time.Now()
	if err := csrload.GrantCSRCreation(ctx, bx.Kube); err != nil {
		b.Fatal(err)
	}
	named := map[string]bool{} // what no request may name: the workers, their Machines, the CSRs
	var cases []csrtest.Case
	for i := 0; i < 5000; i++ {
		name := fmt.Sprintf("worker-big-%05d", i)
		named[name], named[bx.InfraID+"-"+name] = true, true
		cases = append(cases, csrtest.Renewal(csrtest.Host{Name: name}))
	}
	csrNames, err := csrload.Create(ctx, bx.Admin, cases, 32)
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range csrNames {
		named[n] = true
	}
	b.Logf("created 5,000 pending CSRs in %v", time.Since(start).Round(time.Second))

	backupDir := b.TempDir()
	home := b.TempDir()
	runTool := func(name string, args ...string) (time.Duration, string, string, int) {
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
		// health exits 1 here (no backup); 2 would be a usage error.
		if code != 0 && (name != "kubectl-recover" || code == 2) {
			b.Fatalf("%s %v: exit %d\n%s", name, args, code, stderr.String())
		}
		return d, stdout.String(), stderr.String(), code
	}
	healthArgs := []string{"health", "-o", "json", "--backup-dir", backupDir}
	// report reads health's JSON report and fails unless it holds every check.
	report := func(out string, code int) health.Report {
		var r health.Report
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			b.Fatalf("health: exit %d, the report does not parse: %v\n%s", code, err, out)
		}
		if len(r.Checks) < 28 {
			b.Fatalf("health: exit %d, %d checks, want at least 28", code, len(r.Checks))
		}
		return r
	}
	// Warm both (discovery caches, the apiserver's watch caches).
	runTool("kubectl", "get", "nodes,clusteroperators,csr", "-o", "json")
	warm, out, log, code := runTool("kubectl-recover", append(healthArgs, "-v=6")...)
	r := report(out, code)
	var verdicts []string
	for _, c := range r.Checks {
		verdicts = append(verdicts, fmt.Sprintf("%-34s %-4s %s", c.ID, c.Severity, c.Summary))
	}
	b.Logf("health: exit %d, verdict %s, %d checks:\n  %s", code, r.Verdict, len(r.Checks), strings.Join(verdicts, "\n  "))
	var requests, perObject, slowest []string
	for _, line := range strings.Split(log, "\n") {
		m := requestLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		requests = append(requests, m[1]+" "+m[2])
		if ms := latency.FindStringSubmatch(line); ms != nil {
			slowest = append(slowest, fmt.Sprintf("%6s ms  %s %s", ms[1], m[1], m[2]))
		}
		u, err := url.QueryUnescape(m[2])
		if err != nil {
			u = m[2]
		}
		for _, tok := range nameToken.Split(strings.ToLower(u), -1) {
			if named[tok] {
				perObject = append(perObject, m[1]+" "+m[2])
				break
			}
		}
	}
	sort.Strings(requests)
	b.Logf("health made %d API requests:\n  %s", len(requests), strings.Join(requests, "\n  "))
	sort.Slice(slowest, func(i, j int) bool { return slowest[i] > slowest[j] })
	b.Logf("their latencies, slowest first (-v=6 run, %v):\n  %s", warm.Round(time.Millisecond), strings.Join(slowest, "\n  "))
	if len(perObject) > 0 {
		sort.Strings(perObject)
		b.Errorf("%d requests name a worker, its Machine or a CSR, e.g.:\n  %s", len(perObject), strings.Join(perObject[:min(len(perObject), 10)], "\n  "))
	}
	if len(requests) > healthMaxRequests {
		b.Errorf("health made %d API requests, want at most %d", len(requests), healthMaxRequests)
	}

	b.ResetTimer()
	var ours, theirs time.Duration
	for i := 0; i < b.N; i++ {
		d, out, _, code := runTool("kubectl-recover", healthArgs...)
		ours += d
		b.StopTimer()
		report(out, code)
		b.StartTimer()
		d, _, _, _ = runTool("kubectl", "get", "nodes,clusteroperators,csr", "-o", "json")
		theirs += d
	}
	b.StopTimer()
	ratio := ours.Seconds() / theirs.Seconds()
	b.ReportMetric(float64(len(requests)), "api-requests")
	b.ReportMetric(float64(len(perObject)), "per-node-or-csr-requests")
	b.ReportMetric(ratio, "x-kubectl-get-nodes-co-csr-time")
	b.Logf("health: %v; kubectl get nodes,clusteroperators,csr -o json: %v; %.2fx (per run, 5 control-plane + 5,000 worker nodes, 5,000 CSRs)",
		(ours / time.Duration(b.N)).Round(time.Millisecond), (theirs / time.Duration(b.N)).Round(time.Millisecond), ratio)
	if ratio > healthMaxRatio {
		b.Errorf("health took %.2fx the time of kubectl get nodes,clusteroperators,csr -o json over %d runs, want at most %.1fx", ratio, b.N, healthMaxRatio)
	}
}
