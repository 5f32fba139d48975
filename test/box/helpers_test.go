package box_test

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/oc-recover/oc-recover/test/box"
)

// hostRun runs a shell command on a node's host, as root, the way an
// administrator in `oc debug node` + `chroot /host` would.
func hostRun(t *testing.T, b *box.Box, node, script string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd, err := b.Node(node).Sandbox.Command(ctx, box.HostCommand{Argv: []string{"sh", "-c", script}})
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

func nodeReady(n *corev1.Node) corev1.ConditionStatus {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status
		}
	}
	return ""
}

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

func debugPodName(t *testing.T, r result) string {
	t.Helper()
	m := regexp.MustCompile(`Creating debugging pod (\S+) with container`).FindStringSubmatch(r.stdout + r.stderr)
	if m == nil {
		t.Fatalf("kubectl debug did not name its pod: %s", r)
	}
	return m[1]
}

// processesRunning lists the box's host processes that run cmdline (not
// those that are about to, such as the shell that execs it).
func processesRunning(b *box.Box, cmdline string) []string {
	var found []string
	for _, p := range processesUnder(b.Dir) {
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

// waitForHost runs script on node until it prints want.
func waitForHost(t *testing.T, b *box.Box, node, script, want string) {
	t.Helper()
	err := box.WaitFor(context.Background(), 45*time.Second, fmt.Sprintf("%q on %s to print %q", script, node, want), func(context.Context) (bool, string, error) {
		r := hostRun(t, b, node, script)
		return r.stdout == want, r.String(), nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// assertNodeReady waits, with a bound, for the node's Ready condition to
// be want: the kubelet reports a change a moment after it happens.
func assertNodeReady(t *testing.T, b *box.Box, name string, want corev1.ConditionStatus) {
	t.Helper()
	err := box.WaitFor(context.Background(), time.Minute, name+" Ready="+string(want), func(ctx context.Context) (bool, string, error) {
		node, err := b.Kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		return nodeReady(node) == want, "Ready=" + string(nodeReady(node)), nil
	})
	if err != nil {
		t.Error(err)
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
