package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/oc-recover/oc-recover/test/box"
)

var (
	metav1GetOptions    = metav1.GetOptions{}
	metav1UpdateOptions = metav1.UpdateOptions{}
)

func hexID(id uint64) string { return strconv.FormatUint(id, 16) }

// stopMachineAndWait stops node's machine and waits until the etcd operator
// reports its member unhealthy.
func stopMachineAndWait(t *testing.T, b *box.Box, node string) {
	t.Helper()
	ctx := context.Background()
	if err := b.StopMachine(ctx, node); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitForEtcdMembersAvailable(ctx, "2 of 3 members are available, "+node+" is unhealthy"); err != nil {
		t.Fatal(err)
	}
}

// runOnTerminal runs the plugin on a pseudo-terminal (util-linux's script),
// typing input, as a person at a terminal would: the confirmation prompts
// only appear there.
func runOnTerminal(t *testing.T, b *box.Box, input string, args ...string) result {
	t.Helper()
	quoted := []string{filepath.Join(binDir, "kubectl-recover")}
	for _, a := range args {
		quoted = append(quoted, "'"+strings.ReplaceAll(a, "'", `'\''`)+"'")
	}
	return run(t, b, input, "script", "-qec", strings.Join(quoted, " "), "/dev/null")
}

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

func memberIDs(t *testing.T, b *box.Box) map[string]uint64 {
	t.Helper()
	cli, err := b.EtcdClient()
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	list, err := cli.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]uint64{}
	for _, m := range list.Members {
		ids[m.Name] = m.ID
	}
	return ids
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

const debugImage = "registry.redhat.io/rhel9/support-tools"

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

// processesUnder lists the processes chrooted below dir, or about to be
// (their command line names it): every host process of a box.
func processesUnder(dir string) []string {
	var found []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		root, _ := os.Readlink(filepath.Join("/proc", e.Name(), "root"))
		if strings.HasPrefix(root, dir+"/") || strings.Contains(string(cmdline), dir+"/") {
			found = append(found, e.Name()+": "+strings.ReplaceAll(string(cmdline), "\x00", " "))
		}
	}
	return found
}
