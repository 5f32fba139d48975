package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/oc-recover/oc-recover/test/box"
	"github.com/oc-recover/oc-recover/test/internal/boxtest"
)

// eraState is what a refused command must leave exactly as it was: the
// member-replace refusals' clusterState (etcd membership, etcd secrets,
// Machines, etcd/cluster), plus every namespace and pod (none created, none
// deleted), the nodes' schedulability, the static-pod operators' specs
// (what redeploy patches) and the CSRs' conditions (what csr approve adds).
func eraState(t *testing.T, b *box.Box) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	lines := []string{clusterState(t, b)}
	nss, err := b.Kube.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range nss.Items {
		lines = append(lines, fmt.Sprintf("namespace %s uid=%s", ns.Name, ns.UID))
	}
	pods, err := b.Kube.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		lines = append(lines, fmt.Sprintf("pod %s/%s uid=%s", p.Namespace, p.Name, p.UID))
	}
	nodes, err := b.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes.Items {
		lines = append(lines, fmt.Sprintf("node %s uid=%s unschedulable=%v taints=%v", n.Name, n.UID, n.Spec.Unschedulable, n.Spec.Taints))
	}
	if kas, err := b.Operator.OperatorV1().KubeAPIServers().Get(ctx, "cluster", metav1.GetOptions{}); err == nil {
		spec, _ := json.Marshal(kas.Spec)
		lines = append(lines, "kubeapiserver spec "+string(spec))
	}
	csrs, err := b.Kube.CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range csrs.Items {
		var conds []string
		for _, cond := range c.Status.Conditions {
			conds = append(conds, string(cond.Type))
		}
		lines = append(lines, fmt.Sprintf("csr %s %v", c.Name, conds))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// eraCommands are the commands that talk to a cluster, as a user would
// run them to change it; out is a backup directory that must stay absent.
func eraCommands(out string) [][]string {
	return [][]string{
		{"backup", "--output-dir", out},
		{"backup", "--output-dir", out, "--dry-run"},
		{"member", "status"},
		{"member", "status", "-o", "json"},
		{"member", "replace", "master-0", "--yes", "--force"},
		{"redeploy", "etcd", "--yes"},
		{"redeploy", "control-plane", "--yes"},
		{"csr", "approve"},
		{"csr", "approve", "--yes"},
		{"shutdown", "--yes", "--force"},
		{"startup", "--yes", "--timeout", "1m"},
	}
}

// refuseEra runs every command and wants each to exit 1 saying want, and
// nothing changed: no debug namespace or pod, no patch, no file written.
func refuseEra(t *testing.T, b *box.Box, want ...string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "backup")
	before := eraState(t, b)
	for _, args := range eraCommands(out) {
		start := time.Now()
		r := tools.Run(t, b, "", "kubectl-recover", args...)
		if r.Code != 1 {
			t.Errorf("%v: want exit 1:\n%s", args, r)
		}
		for _, w := range want {
			if !strings.Contains(r.Stderr, w) {
				t.Errorf("%v: stderr lacks %q:\n%s", args, w, r)
			}
		}
		if strings.Contains(r.Stdout+r.Stderr, "seed") {
			t.Errorf("%v: the message speaks of seeds:\n%s", args, r)
		}
		if d := time.Since(start); d > 30*time.Second {
			t.Errorf("%v took %s to refuse", args, d)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Errorf("%v: %s exists after a refusal (%v)", args, out, err)
		}
	}
	if after := eraState(t, b); after != before {
		t.Errorf("a refused command changed the cluster:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	// cleanup only removes oc-recover's own leftovers and is not refused.
	if r := tools.Run(t, b, "", "kubectl-recover", "cleanup", "--yes"); r.Code != 0 || !strings.Contains(r.Stdout, "Nothing to clean up") {
		t.Errorf("cleanup: %s", r)
	}
}

// A cluster whose ClusterVersion says 4.3.40 (the box otherwise runs as
// 4.4+ does) is refused by every command, naming the release.
func TestEraRefusesOpenShift43(t *testing.T) {
	t.Parallel()
	b := boxtest.StartBox(t, box.Options{Version: "4.3.40"})
	refuseEra(t, b,
		"refusing, nothing was done: this cluster runs OpenShift 4.3.40, whose etcd is not managed by the etcd operator (etcd-member-<node> pods)",
		"oc-recover supports OpenShift 4.4 and later",
		"OpenShift Container Platform 4.3 documentation, Backup and restore")
}

// A cluster without clusterversion/version is not OpenShift 4.
func TestEraRefusesAClusterWithoutClusterVersion(t *testing.T) {
	t.Parallel()
	b := boxtest.StartBox(t, box.Options{})
	ctx := context.Background()
	if err := b.Config.ConfigV1().ClusterVersions().Delete(ctx, "version", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	refuseEra(t, b, "no clusterversion/version", "not OpenShift 4", "oc-recover supports OpenShift 4.4 and later")
}

// The releases after 4.3 pass the check: member status on 4.4 (the first
// with the etcd operator) and on a release newer than this plugin knows.
func TestEraAcceptsOpenShift44AndNewer(t *testing.T) {
	t.Parallel()
	for _, version := range []string{"4.4.0", "4.21.0"} {
		t.Run(version, func(t *testing.T) {
			b := boxtest.StartBox(t, box.Options{Version: version})
			if r := tools.Run(t, b, "", "kubectl-recover", "member", "status"); r.Code != 0 || strings.Contains(r.Stderr, "refusing") {
				t.Errorf("member status on %s: %s", version, r)
			}
		})
	}
}
