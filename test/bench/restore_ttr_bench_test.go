package bench

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/oc-recover/oc-recover/test/box"
	"github.com/oc-recover/oc-recover/test/internal/boxtest"
)

// restorePhase is a stretch of a restore, as its progress shows it: it
// ends at the last progress line containing until (an empty until: the
// command's exit).
type restorePhase struct{ name, until string }

// restorePhases are the restore's phases in the order they end: the
// pre-flight (backup verify, the snapshot's identity, the hosts), phase A
// (the backup staged on the recovery host, the units armed), phase B (the
// blackout: the hosts restore without the API), and phase C split where the
// progress shows its steps: the node CSRs and the single member up to the
// quorum guard lifted; etcd's redeployment until every member is back and
// the guard is put back; the other control-plane redeployments (4.4-4.17)
// until every cluster operator is stable; and the stable period with the
// clean-up.
var restorePhases = []restorePhase{
	{"preflight", ": staging "},
	{"A-stage-arm", ": armed "},
	{"B-blackout", "the API serves the restored data"},
	{"C-csr-guard", "quorum guard lifted"},
	{"C-etcd-members", "put back to"},
	{"C-redeploys-until-stable", "every cluster operator is stable"},
	{"C-stable-period-cleanup", ""},
}

// BenchmarkRestoreTimeToRecovery restores a three-host box (4.14, or
// BENCH_RESTORE_VERSION) to its backup through the API, as `oc recover
// restore BACKUP_DIR --yes` does, once per iteration, and reports the time
// to recovery broken down by phase and the plugin's own share of it: the
// CPU time of the plugin's process (user and system) over the wall time.
// Everything else is waiting on the box's simulated hosts, kubelets and
// operators, which run in this process, not in the plugin's. The operators'
// stable period is 5 s (--minimum-stable-period; 5 min by default, which
// would be all waiting). Target: a plugin share of at most 10 %.
func BenchmarkRestoreTimeToRecovery(b *testing.B) {
	ctx := context.Background()
	bin := b.TempDir()
	plugin := filepath.Join(bin, "oc-recover")
	if err := boxtest.GoBuild(boxtest.RepoRoot(), []string{"CGO_ENABLED=0"}, "build", "-o", plugin, "./cmd/oc-recover"); err != nil {
		b.Fatal(err)
	}
	bx, err := box.Start(ctx, box.Options{Version: os.Getenv("BENCH_RESTORE_VERSION")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(bx.Stop)
	home := b.TempDir()
	run := func(args ...string) *exec.Cmd {
		cmd := exec.Command(plugin, args...)
		cmd.Env = append(os.Environ(), "KUBECONFIG="+bx.Kubeconfig, "HOME="+home)
		return cmd
	}
	dir := filepath.Join(b.TempDir(), "backup")
	if out, err := run("backup", "--output-dir", dir).CombinedOutput(); err != nil {
		b.Fatalf("backup: %v\n%s", err, out)
	}

	b.ResetTimer()
	spent := map[string]time.Duration{}
	var wall, cpu time.Duration
	for i := 0; i < b.N; i++ {
		phases, w, c := timedRestore(b, run("restore", dir, "--yes", "--minimum-stable-period", "5s"))
		for name, d := range phases {
			spent[name] += d
		}
		wall, cpu = wall+w, cpu+c
	}
	b.StopTimer()
	n := time.Duration(b.N)
	var summary []string
	for _, p := range restorePhases {
		b.ReportMetric((spent[p.name] / n).Seconds(), "s-"+p.name)
		summary = append(summary, p.name+" "+(spent[p.name]/n).Round(100*time.Millisecond).String())
	}
	b.ReportMetric((wall / n).Seconds(), "s-time-to-recovery")
	b.ReportMetric(100*cpu.Seconds()/wall.Seconds(), "%-plugin-own-share")
	b.Logf("time to recovery %v: %s; the plugin's own CPU %v (%.1f%%)", (wall / n).Round(100*time.Millisecond), strings.Join(summary, ", "),
		(cpu / n).Round(10*time.Millisecond), 100*cpu.Seconds()/wall.Seconds())
}

// timedRestore runs one restore, timing each of its phases from its
// progress lines as they arrive, and returns them with the wall time and
// the CPU time of the plugin's process.
func timedRestore(b *testing.B, cmd *exec.Cmd) (map[string]time.Duration, time.Duration, time.Duration) {
	stderr, err := cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	var stdout strings.Builder
	cmd.Stdout = &stdout
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	ends := map[string]time.Time{}
	var progress strings.Builder
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		line := sc.Text()
		progress.WriteString(line + "\n")
		for _, p := range restorePhases {
			if p.until != "" && strings.Contains(line, p.until) {
				ends[p.name] = time.Now()
			}
		}
	}
	if err := cmd.Wait(); err != nil {
		b.Fatalf("restore: %v\n%s\n%s", err, progress.String(), stdout.String())
	}
	end := time.Now()
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())

	phases := map[string]time.Duration{}
	from := start
	for _, p := range restorePhases {
		until, ok := ends[p.name]
		if p.until == "" {
			until, ok = end, true
		}
		if !ok || until.Before(from) {
			b.Fatalf("restore's progress shows no %q after the phase before (%s):\n%s", p.until, p.name, progress.String())
		}
		phases[p.name], from = until.Sub(from), until
	}
	return phases, end.Sub(start), cpu
}
