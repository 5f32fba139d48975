package bench

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/oc-recover/oc-recover/test/internal/boxtest"
)

// startsPerRound is how many times each program starts per benchmark
// iteration, alternating, so both see the same machine load.
const startsPerRound = 20

// BenchmarkStartup compares the plugin's start-up, `oc-recover --help`, with
// `kubectl version --client` in the same run: the time an administrator
// waits before anything happens. Both are built as they are released
// (CGO_ENABLED=0, -trimpath, -s -w). Target: at most 0.5x kubectl's.
func BenchmarkStartup(b *testing.B) {
	bin := b.TempDir()
	repo := boxtest.RepoRoot()
	for _, build := range []struct{ name, dir, pkg string }{
		{"oc-recover", repo, "./cmd/oc-recover"},
		{"kubectl", "", "k8s.io/kubernetes/cmd/kubectl"},
	} {
		cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-ldflags", "-s -w",
			"-o", filepath.Join(bin, build.name), build.pkg)
		cmd.Dir = build.dir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("build %s: %v\n%s", build.name, err, out)
		}
	}
	env := []string{"PATH=" + bin, "HOME=" + b.TempDir()}
	start := func(name string, args ...string) time.Duration {
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.Env = env
		t0 := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return time.Since(t0)
	}
	ours := func() time.Duration { return start("oc-recover", "--help") }
	theirs := func() time.Duration { return start("kubectl", "version", "--client") }
	// Warm the page cache with both binaries.
	ours()
	theirs()

	b.ResetTimer()
	var oursTotal, theirsTotal time.Duration
	for i := 0; i < b.N; i++ {
		for j := 0; j < startsPerRound; j++ {
			oursTotal += ours()
			theirsTotal += theirs()
		}
	}
	b.StopTimer()
	n := time.Duration(b.N * startsPerRound)
	b.ReportMetric(float64((oursTotal/n).Microseconds())/1000, "ms-oc-recover-help")
	b.ReportMetric(float64((theirsTotal/n).Microseconds())/1000, "ms-kubectl-version-client")
	b.ReportMetric(oursTotal.Seconds()/theirsTotal.Seconds(), "x-kubectl-version-client-time")
	b.Logf("oc-recover --help: %v; kubectl version --client: %v (mean of %d starts each)",
		(oursTotal / n).Round(100*time.Microsecond), (theirsTotal / n).Round(100*time.Microsecond), b.N*startsPerRound)
}
