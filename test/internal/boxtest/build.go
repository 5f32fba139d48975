package boxtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// GoBuild runs `go args...` in dir (where dir is "", the test package's
// own directory, inside the test module) with env added to the
// environment; its error carries the compiler's output, which is what a
// failed build in a TestMain has to show.
func GoBuild(dir string, env []string, args ...string) error {
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// BuildKubectl builds kubectl into dir from the Kubernetes release the box
// runs: the tests use a third-party kubectl built here, not one installed
// by hand.
func BuildKubectl(dir string) error {
	return GoBuild("", nil, "build", "-o", filepath.Join(dir, "kubectl"), "k8s.io/kubernetes/cmd/kubectl")
}

// RepoRoot is the plugin's repository, the parent of the test module: the
// plugin is built from its own module, as a release builds it.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	// file is <repo>/test/internal/boxtest/build.go.
	return filepath.Dir(filepath.Dir(filepath.Dir(filepath.Dir(file))))
}
