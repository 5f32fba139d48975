// Package e2e drives the real oc-recover binary, and third-party tools such as
// kubectl, against the cluster-in-a-box, exactly as an administrator would.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/oc-recover/oc-recover/test/box"
)

var (
	// binDir holds the built kubectl-recover, oc-recover and kubectl.
	binDir string
	// shared is a box for tests that do not change the cluster's health.
	shared *box.Box
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "oc-recover-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binDir = dir
	if err := buildBinaries(dir); err != nil {
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

// e2eVersion is stamped into the plugin the way `make build` stamps a release.
const e2eVersion = "v9.9.9-e2e"

// buildBinaries builds the plugin under both its names, and kubectl from the
// Kubernetes release the box runs.
//
// The plugin is built from its own module with CGO_ENABLED=0, as `make
// release` builds it (and as the Makefile builds and tests everything), and
// the release archive of the krew tests packages this very binary: one
// compilation of the plugin's packages serves the unit tests, the plugin and
// its archive. (Release builds add -trimpath, which would compile them all
// again.)
func buildBinaries(dir string) error {
	builds := []struct {
		dir  string
		env  []string
		args []string
	}{
		{repoRoot(), []string{"CGO_ENABLED=0"}, []string{"build", "-buildvcs=false",
			"-ldflags", "-X github.com/oc-recover/oc-recover/pkg/version.gitVersion=" + e2eVersion,
			"-o", filepath.Join(dir, "kubectl-recover"), "./cmd/oc-recover"}},
		{"", nil, []string{"build", "-o", filepath.Join(dir, "kubectl"), "k8s.io/kubernetes/cmd/kubectl"}},
	}
	for _, b := range builds {
		cmd := exec.Command("go", b.args...)
		cmd.Dir = b.dir
		cmd.Env = append(os.Environ(), b.env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go %s: %v\n%s", strings.Join(b.args, " "), err, out)
		}
	}
	return os.Link(filepath.Join(dir, "kubectl-recover"), filepath.Join(dir, "oc-recover"))
}

// repoRoot is the plugin's repository, the parent of the test module.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(filepath.Dir(file)))
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
