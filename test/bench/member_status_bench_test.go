package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	machinev1beta1 "github.com/openshift/api/machine/v1beta1"
	machineclient "github.com/openshift/client-go/machine/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/oc-recover/oc-recover/test/box"
)

// createWorkers adds n worker Node and Machine objects (objects only: no
// kubelet runs for them), in parallel.
func createWorkers(ctx context.Context, cfg *rest.Config, infra string, n int) error {
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = 5000, 5000
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	jsonCfg := rest.CopyConfig(cfg)
	jsonCfg.ContentType = "application/json"
	machines, err := machineclient.NewForConfig(jsonCfg)
	if err != nil {
		return err
	}
	return parallel(n, 32, func(i int) error {
		name := fmt.Sprintf("worker-big-%05d", i)
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
			"node-role.kubernetes.io/worker": "", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}},
			Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}}
		if _, err := kube.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
			return err
		}
		m := &machinev1beta1.Machine{ObjectMeta: metav1.ObjectMeta{Name: infra + "-" + name, Namespace: "openshift-machine-api",
			Labels: map[string]string{"machine.openshift.io/cluster-api-machine-role": "worker", "machine.openshift.io/cluster-api-cluster": infra}}}
		_, err := machines.MachineV1beta1().Machines("openshift-machine-api").Create(ctx, m, metav1.CreateOptions{})
		return err
	})
}

var requestLine = regexp.MustCompile(`"Response" verb="(\w+)" url="([^"]+)"`)

// BenchmarkMemberStatusAtScale runs `member status` on a box with 5
// control-plane nodes and 5,000 worker Node and Machine objects: it counts
// the plugin's API requests (from its -v=6 log) and compares its wall time
// with `kubectl get nodes -o json` in the same run.
func BenchmarkMemberStatusAtScale(b *testing.B) {
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

	runTool := func(name string, args ...string) (time.Duration, string) {
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.Env = append(os.Environ(), "KUBECONFIG="+bx.Kubeconfig)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		cmd.Stdout = nil
		t0 := time.Now()
		err := cmd.Run()
		d := time.Since(t0)
		if err != nil {
			b.Fatalf("%s %v: %v\n%s", name, args, err, stderr.String())
		}
		return d, stderr.String()
	}
	// Warm both (discovery caches, the apiserver's watch caches).
	runTool("kubectl", "get", "nodes", "-o", "json")
	_, log := runTool("kubectl-recover", "member", "status", "-o", "json", "-v=6")
	var requests []string
	for _, m := range requestLine.FindAllStringSubmatch(log, -1) {
		requests = append(requests, m[1]+" "+m[2])
	}
	sort.Strings(requests)
	perNode := 0
	for _, r := range requests {
		if strings.Contains(r, "/nodes/") {
			perNode++
		}
	}
	b.Logf("member status made %d API requests:\n  %s", len(requests), strings.Join(requests, "\n  "))

	b.ResetTimer()
	var ours, theirs time.Duration
	for i := 0; i < b.N; i++ {
		d, _ := runTool("kubectl-recover", "member", "status", "-o", "json")
		ours += d
		d, _ = runTool("kubectl", "get", "nodes", "-o", "json")
		theirs += d
	}
	b.StopTimer()
	b.ReportMetric(float64(len(requests)), "api-requests")
	b.ReportMetric(float64(perNode), "per-node-GETs")
	b.ReportMetric(ours.Seconds()/theirs.Seconds(), "x-kubectl-get-nodes-time")
	b.Logf("member status: %v; kubectl get nodes -o json: %v (per run, 5 control-plane + 5,000 worker nodes)",
		(ours / time.Duration(b.N)).Round(time.Millisecond), (theirs / time.Duration(b.N)).Round(time.Millisecond))
}
