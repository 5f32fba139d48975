package e2e

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/oc-recover/oc-recover/pkg/health"
	"github.com/oc-recover/oc-recover/test/box"
	"github.com/oc-recover/oc-recover/test/internal/boxtest"
)

// The alerts check and the host checks of --deep against one box: healthy
// first, then each fault alone and undone. backup.local is skipped: its
// judgement is TestHealth's, and a backup would only slow this down.
func TestHealthDeep(t *testing.T) {
	t.Parallel()
	b := boxtest.StartBox(t, box.Options{Workers: 1})
	ctx := context.Background()
	skip := []string{"--skip", "backup"}
	deep := []string{"--deep", "--only", "hosts"}

	// runDeep runs `health --deep --only hosts` and proves the debug
	// namespaces it created are gone.
	runDeep := func(t *testing.T) (health.Report, boxtest.Result) {
		t.Helper()
		rep, r := runHealth(t, b, deep...)
		waitNoLeftovers(t, ctx, b.Kube)
		return rep, r
	}

	t.Run("healthy, with --deep", func(t *testing.T) {
		waitHealthy(t, b, skip...)
		rep, r := runHealth(t, b, append([]string{"--deep"}, skip...)...)
		wantChecks(t, rep, r, nil)
		waitNoLeftovers(t, ctx, b.Kube)
		for _, id := range []string{"alerts", "hosts.disk", "hosts.clock", "hosts.kubeletcerts", "hosts.tmp"} {
			c := find(rep, id)
			if c.ID == "" {
				t.Errorf("no %s in the report", id)
				continue
			}
			if !strings.HasPrefix(id, "hosts.") {
				continue
			}
			ev := strings.Join(c.Evidence, "\n")
			for _, n := range []string{"master-0: ", "master-1: ", "master-2: "} {
				if !strings.Contains(ev, n) {
					t.Errorf("%s does not name %s: %q", id, n, ev)
				}
			}
			if strings.Contains(ev, "worker-0") {
				t.Errorf("%s visited a worker: %q", id, ev)
			}
		}
		if !strings.Contains(r.Stderr, "Started debug pod") || !strings.Contains(r.Stderr, "Removed debug namespace") {
			t.Errorf("no progress lines on stderr:\n%s", r.Stderr)
		}
		if c := find(rep, "hosts.clock"); !strings.Contains(strings.Join(c.Evidence, "\n"), "master-0: 0.000012 s behind NTP time (reference C0000201 (192.0.2.1), leap status Normal)") {
			t.Errorf("hosts.clock: %+v", c)
		}
	})

	t.Run("without --deep, no host check", func(t *testing.T) {
		rep, _ := runHealth(t, b, skip...)
		for _, c := range rep.Checks {
			if health.Area(c.ID) == "hosts" {
				t.Errorf("%s ran without --deep", c.ID)
			}
		}
		r := tools.Run(t, b, "", "kubectl-recover", "health", "--only", "hosts.clock")
		if r.Code != 2 || !strings.Contains(r.Stderr, "--deep") {
			t.Errorf("--only hosts.clock without --deep: %s", r)
		}
	})

	t.Run("a critical alert fires, then clears", func(t *testing.T) {
		clear := b.FireAlert("KubeAPIErrorBudgetBurn", "critical", "openshift-kube-apiserver", "The API server is burning too much error budget.")
		rep, r := runHealth(t, b, skip...)
		clear()
		wantChecks(t, rep, r, map[string]expect{"alerts": {health.Fail,
			"critical KubeAPIErrorBudgetBurn (namespace openshift-kube-apiserver): The API server is burning too much error budget.", "runbook_url"}})
		rep, r = runHealth(t, b, skip...)
		wantChecks(t, rep, r, nil)
	})

	t.Run("a warning alert", func(t *testing.T) {
		clear := b.FireAlert("KubePodNotReady", "warning", "openshift-ingress", "Pod has been in a non-ready state for more than 15 minutes.")
		also := b.FireAlert("InsightsRecommendationActive", "info", "openshift-insights", "An Insights recommendation is active.")
		rep, r := runHealth(t, b, "--only", "alerts")
		clear()
		also()
		wantChecks(t, rep, r, map[string]expect{"alerts": {health.Warn, "warning KubePodNotReady (namespace openshift-ingress)", ""}})
		if c := find(rep, "alerts"); strings.Contains(strings.Join(c.Evidence, "\n"), "Insights") || !strings.Contains(c.Summary, "1 of other severities not judged") {
			t.Errorf("an info alert judged: %+v", c)
		}
	})

	t.Run("monitoring does not answer", func(t *testing.T) {
		start, err := b.StopMonitoring(ctx)
		if err != nil {
			t.Fatal(err)
		}
		rep, r := runHealth(t, b, "--only", "alerts")
		if err := start(ctx); err != nil {
			t.Fatal(err)
		}
		wantChecks(t, rep, r, map[string]expect{"alerts": {health.Warn, "openshift-monitoring/prometheus-k8s-1: ", "oc -n openshift-monitoring get pods"}})
		if c := find(rep, "alerts"); c.Summary != "monitoring does not answer: alerts not checked" {
			t.Errorf("alerts: %+v", c)
		}
		rep, r = runHealth(t, b, "--only", "alerts")
		wantChecks(t, rep, r, nil)
	})

	t.Run("a skewed clock", func(t *testing.T) {
		restore, err := b.SkewClock("master-1", -3*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		rep, r := runDeep(t)
		if err := restore(); err != nil {
			t.Fatal(err)
		}
		wantChecks(t, rep, r, map[string]expect{"hosts.clock": {health.Fail, "master-1: 3.000000 s behind NTP time", "Configuring chrony time service"}})
		if c := find(rep, "hosts.clock"); c.Summary != "clock off or unsynchronised: master-1" {
			t.Errorf("hosts.clock: %+v", c)
		}
		rep, r = runDeep(t)
		wantChecks(t, rep, r, nil)
	})

	t.Run("a full disk", func(t *testing.T) {
		restore, err := b.FillDisk("master-2", 5)
		if err != nil {
			t.Fatal(err)
		}
		rep, r := runDeep(t)
		wantChecks(t, rep, r, map[string]expect{"hosts.disk": {health.Fail, "master-2: /var: 5% free, 6.0 GiB of 120.0 GiB", "crictl rmi --prune"}})
		if err := restore(); err != nil {
			t.Fatal(err)
		}
		if restore, err = b.FillDisk("master-2", 15); err != nil {
			t.Fatal(err)
		}
		rep, r = runDeep(t)
		if err := restore(); err != nil {
			t.Fatal(err)
		}
		wantChecks(t, rep, r, map[string]expect{"hosts.disk": {health.Warn, "master-2: /var: 15% free", ""}})
	})

	t.Run("kubelet certificates close to expiry", func(t *testing.T) {
		if err := b.AgeKubeletCertificates(ctx, "master-0", time.Now().Add(3*24*time.Hour)); err != nil {
			t.Fatal(err)
		}
		rep, r := runDeep(t)
		wantChecks(t, rep, r, map[string]expect{"hosts.kubeletcerts": {health.Warn, "master-0: serving certificate expires on", "csr approve"}})
		if c := find(rep, "hosts.kubeletcerts"); !strings.Contains(strings.Join(c.Evidence, "\n"), "master-0: client certificate expires on") {
			t.Errorf("hosts.kubeletcerts: %+v", c)
		}
		if err := b.AgeKubeletCertificates(ctx, "master-0", time.Now().Add(-time.Hour)); err != nil {
			t.Fatal(err)
		}
		rep, r = runDeep(t)
		wantChecks(t, rep, r, map[string]expect{"hosts.kubeletcerts": {health.Fail, "master-0: serving certificate expired on", "Recovering from expired control plane certificates"}})
		if err := b.AgeKubeletCertificates(ctx, "master-0", time.Now().Add(30*24*time.Hour)); err != nil {
			t.Fatal(err)
		}
		rep, r = runDeep(t)
		wantChecks(t, rep, r, nil)
	})

	t.Run("interrupted while a host answers slowly", func(t *testing.T) {
		replaceHostTool(t, b, "master-0", "chronyc", "#!/bin/bash\nsleep 600\n")
		cmd := exec.Command(filepath.Join(tools.BinDir, "kubectl-recover"), "health", "--deep", "--only", "hosts")
		cmd.Env = append(os.Environ(), "KUBECONFIG="+b.Kubeconfig)
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		progress := bufio.NewReader(stderr)
		for range 3 {
			waitForLine(t, progress, "Started debug pod")
		}
		time.Sleep(2 * time.Second) // the other hosts answer; master-0's chronyc sleeps
		if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		rest, _ := readAll(progress)
		if code := exitCodeOf(cmd.Wait()); code != 1 {
			t.Errorf("interrupted health --deep exited %d, want 1:\n%s", code, rest)
		}
		if time.Since(start) > time.Minute {
			t.Errorf("it took %v to stop", time.Since(start))
		}
		waitNoLeftovers(t, ctx, b.Kube)
	})

	t.Run("etcd's data left in /tmp", func(t *testing.T) {
		moved := filepath.Join(b.Node("master-1").Sandbox.Root, "tmp", "etcd-pod.yaml")
		if err := os.WriteFile(moved, []byte("apiVersion: v1\nkind: Pod\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		rep, r := runDeep(t)
		if err := os.Remove(moved); err != nil {
			t.Fatal(err)
		}
		wantChecks(t, rep, r, map[string]expect{"hosts.tmp": {health.Warn, "master-1: /tmp is ", "/var/lib/etcd-backup"}})
		if c := find(rep, "hosts.tmp"); !strings.Contains(strings.Join(c.Evidence, "\n"), "/tmp/etcd-pod.yaml (") {
			t.Errorf("hosts.tmp: %+v", c)
		}
	})
}
