package box_test

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/oc-recover/oc-recover/test/box"
	"github.com/oc-recover/oc-recover/test/internal/boxtest"
)

func hasTaint(n *corev1.Node, key string) bool {
	for _, t := range n.Spec.Taints {
		if t.Key == key {
			return true
		}
	}
	return false
}

// uniqueSleep is a sleep command that names the process running it.
func uniqueSleep() string {
	return fmt.Sprintf("sleep 600.%06d", time.Now().UnixNano()/1000%1000000)
}

func debugPodName(t *testing.T, r boxtest.Result) string {
	t.Helper()
	m := regexp.MustCompile(`Creating debugging pod (\S+) with container`).FindStringSubmatch(r.Stdout + r.Stderr)
	if m == nil {
		t.Fatalf("kubectl debug did not name its pod: %s", r)
	}
	return m[1]
}

// processesRunning lists the box's host processes that run cmdline (not
// those that are about to, such as the shell that execs it).
func processesRunning(b *box.Box, cmdline string) []string {
	var found []string
	for _, p := range boxtest.ProcessesUnder(b.Dir) {
		if _, args, _ := strings.Cut(p, ": "); strings.HasPrefix(args, cmdline+" ") {
			found = append(found, p)
		}
	}
	return found
}

func waitForProcess(t *testing.T, b *box.Box, cmdline string, running bool) {
	t.Helper()
	err := box.WaitFor(context.Background(), 30*time.Second, fmt.Sprintf("%q running=%v", cmdline, running), func(context.Context) (bool, string, error) {
		found := processesRunning(b, cmdline)
		return (len(found) > 0) == running, fmt.Sprint(found), nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func instanceState(t *testing.T, b *box.Box, node string) string {
	t.Helper()
	m, err := b.Machine.MachineV1beta1().Machines("openshift-machine-api").Get(context.Background(), b.Node(node).MachineName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var ps struct{ InstanceState string }
	if err := yaml.Unmarshal(m.Status.ProviderStatus.Raw, &ps); err != nil {
		t.Fatal(err)
	}
	return ps.InstanceState
}
