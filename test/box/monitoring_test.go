package box_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/oc-recover/oc-recover/test/box"
	"github.com/oc-recover/oc-recover/test/internal/boxtest"
)

// alertsSeen runs, as an administrator would, curl in the Prometheus pod's
// prometheus container and returns the firing alerts' names.
func alertsSeen(t *testing.T) []string {
	t.Helper()
	r := tools.Run(t, shared, "", "kubectl", "exec", "-n", "openshift-monitoring", "prometheus-k8s-0", "-c", "prometheus", "--",
		"curl", "-s", "http://localhost:9090/api/v1/alerts")
	if r.Code != 0 {
		t.Fatalf("exec curl: %s", r)
	}
	var body struct {
		Status string `json:"status"`
		Data   struct {
			Alerts []struct {
				Labels map[string]string `json:"labels"`
				State  string            `json:"state"`
			} `json:"alerts"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &body); err != nil || body.Status != "success" {
		t.Fatalf("not the Prometheus API's answer (%v): %s", err, r)
	}
	var names []string
	for _, a := range body.Data.Alerts {
		if a.State == "firing" {
			names = append(names, a.Labels["alertname"]+"/"+a.Labels["severity"]+"/"+a.Labels["namespace"])
		}
	}
	return names
}

// The box's Prometheus answers in its pod, through exec and the pod's own
// curl, with Watchdog firing and whatever FireAlert adds until cleared.
func TestPrometheusAnswersInItsPod(t *testing.T) {
	if got := strings.Join(alertsSeen(t), ","); got != "Watchdog/none/openshift-monitoring" {
		t.Fatalf("a healthy box fires %s, want Watchdog alone", got)
	}
	clear := shared.FireAlert("BoxTestAlert", "critical", "openshift-etcd", "a test alert")
	got := strings.Join(alertsSeen(t), ",")
	clear()
	if got != "Watchdog/none/openshift-monitoring,BoxTestAlert/critical/openshift-etcd" {
		t.Errorf("after FireAlert: %s", got)
	}
	if got := strings.Join(alertsSeen(t), ","); got != "Watchdog/none/openshift-monitoring" {
		t.Errorf("after clear: %s", got)
	}
}

// Prometheus listens on the loopback of its pod's network only: neither
// the test machine's 127.0.0.1 nor the node's address reach it (nor,
// then, a debug pod, which shares the test machine's network).
func TestPrometheusListensInItsPodOnly(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pod, err := shared.Kube.CoreV1().Pods("openshift-monitoring").Get(ctx, "prometheus-k8s-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	node := pod.Spec.NodeName
	client := &http.Client{Timeout: 2 * time.Second}
	for _, addr := range []string{"127.0.0.1:9090", net.JoinHostPort(shared.Node(node).IP.String(), "9090")} {
		resp, err := client.Get("http://" + addr + "/api/v1/alerts")
		if err != nil {
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(body), "Watchdog") && strings.Contains(string(body), "openshift-monitoring/k8s") {
			t.Errorf("the box's Prometheus answers at %s on the test machine", addr)
		}
	}
	r := tools.Run(t, shared, "", "kubectl", "exec", "-n", "openshift-monitoring", "prometheus-k8s-0", "-c", "prometheus", "--",
		"sh", "-c", "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:9090/-/ready")
	if r.Code != 0 || r.Stdout != "200" {
		t.Errorf("in the pod, 127.0.0.1:9090: %s", r)
	}
}

// Prometheus comes back when the machine it runs on boots again: the
// kubelet starts again the pods that should always run.
func TestPrometheusSurvivesItsMachine(t *testing.T) {
	t.Parallel()
	b := boxtest.StartBox(t, box.Options{Masters: 1, Workers: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	answers := func() bool {
		r := tools.Run(t, b, "", "kubectl", "exec", "-n", "openshift-monitoring", "prometheus-k8s-0", "-c", "prometheus", "--",
			"curl", "-s", "http://localhost:9090/api/v1/alerts")
		return r.Code == 0 && strings.Contains(r.Stdout, `"alertname":"Watchdog"`)
	}
	if !answers() {
		t.Fatal("Prometheus does not answer on a new box")
	}
	if err := b.StopMachine(ctx, "worker-0"); err != nil {
		t.Fatal(err)
	}
	if answers() {
		t.Error("Prometheus answers while its machine is off")
	}
	if err := b.StartMachine(ctx, "worker-0"); err != nil {
		t.Fatal(err)
	}
	err := box.WaitFor(ctx, 2*time.Minute, "Prometheus answering after its machine booted", func(context.Context) (bool, string, error) {
		return answers(), "", nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
