// The box's own tests: that what the box simulates behaves as on a cluster,
// seen through the real apiserver, etcd, the hosts' tools and a third-party
// kubectl. Tests of the oc-recover binary and libraries against the box are
// in test/e2e.
package box_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oc-recover/oc-recover/test/box"
)

var (
	// binDir holds the built kubectl.
	binDir string
	// shared is a box for tests that do not change the cluster's health.
	shared *box.Box
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "oc-recover-box-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binDir = dir
	if err := buildKubectl(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	shared, err = box.Start(ctx, box.Options{Workers: 1})
	if err != nil {
		fmt.Fprintln(os.Stderr, "start the cluster-in-a-box:", err)
		return 1
	}
	defer shared.Stop()
	return m.Run()
}

// buildKubectl builds kubectl from the Kubernetes release the box runs.
func buildKubectl(dir string) error {
	args := []string{"build", "-o", filepath.Join(dir, "kubectl"), "k8s.io/kubernetes/cmd/kubectl"}
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// result is what a command printed and how it exited.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// run runs a program from binDir (or PATH) with the box's kubeconfig, the
// way a user's shell would, and a bounded time.
func run(t *testing.T, b *box.Box, stdin string, name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	path := name
	if _, err := os.Stat(filepath.Join(binDir, name)); err == nil {
		path = filepath.Join(binDir, name)
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+b.Kubeconfig, "PATH="+binDir+":"+os.Getenv("PATH"), "HOME="+t.TempDir())
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else {
			t.Fatalf("%s %v: %v", name, args, err)
		}
	}
	return result{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

// startBox starts a box of the test's own, for tests that break it.
func startBox(t *testing.T, opts box.Options) *box.Box {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b, err := box.Start(ctx, opts)
	if err != nil {
		t.Fatalf("start the cluster-in-a-box: %v", err)
	}
	t.Cleanup(b.Stop)
	return b
}

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
