// Package e2e drives the real oc-recover binary, and third-party tools such as
// kubectl, against the cluster-in-a-box, exactly as an administrator would.
// debugnode_test.go alone drives a library, the debug-node engine, against
// the box: it proves what every command's host work stands on. The box's
// tests of itself are in test/box.
package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/oc-recover/oc-recover/test/box"
	"github.com/oc-recover/oc-recover/test/internal/boxtest"
)

var (
	// tools runs the kubectl-recover, oc-recover and kubectl TestMain built.
	tools boxtest.Tools
	// shared is a box for tests that do not change the cluster's health.
	shared *box.Box
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	suite, err := boxtest.StartSuite("oc-recover-e2e-bin-", buildBinaries)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer suite.Stop()
	tools, shared = suite.Tools, suite.Shared
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
	err := boxtest.GoBuild(boxtest.RepoRoot(), []string{"CGO_ENABLED=0"}, "build", "-buildvcs=false",
		"-ldflags", "-X github.com/oc-recover/oc-recover/pkg/version.gitVersion="+e2eVersion,
		"-o", filepath.Join(dir, "kubectl-recover"), "./cmd/oc-recover")
	if err != nil {
		return err
	}
	if err := boxtest.BuildKubectl(dir); err != nil {
		return err
	}
	return os.Link(filepath.Join(dir, "kubectl-recover"), filepath.Join(dir, "oc-recover"))
}
