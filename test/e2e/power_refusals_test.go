package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/oc-recover/oc-recover/pkg/debugnode"
	"github.com/oc-recover/oc-recover/pkg/power"
	"github.com/oc-recover/oc-recover/test/box"
	"github.com/oc-recover/oc-recover/test/internal/boxtest"
)

// Every refusal leaves the cluster as it was: no shutdown scheduled on any
// host, no debug namespace left.
func TestShutdownRefusals(t *testing.T) {
	t.Parallel()
	b := boxtest.StartBox(t, box.Options{Workers: 1, MinuteScale: time.Second})
	ctx := context.Background()
	backupDir := t.TempDir()

	t.Run("no backup", func(t *testing.T) {
		r := tools.Run(t, b, "", "kubectl-recover", "shutdown", "--backup-dir", backupDir, "--yes")
		if r.Code != 1 || !strings.Contains(r.Stderr, "refusing, nothing was done: no backup of cluster "+b.ClusterID) {
			t.Fatalf("shutdown without a backup: %s", r)
		}
		assertNothingScheduled(t, b)
		waitNoDebugNamespaces(t, b)
	})

	t.Run("signer expiring before the restart", func(t *testing.T) {
		now := time.Now().Truncate(time.Second)
		soon := now.Add(10 * 24 * time.Hour)
		defer func() {
			if err := b.ReplaceKubeletSigner(ctx, now.Add(-100*24*time.Hour), now.Add(265*24*time.Hour), true); err != nil {
				t.Fatal(err)
			}
		}()
		for _, annotated := range []bool{true, false} {
			if err := b.ReplaceKubeletSigner(ctx, now.Add(-355*24*time.Hour), soon, annotated); err != nil {
				t.Fatal(err)
			}
			// --force: the backup is not what this is about; the signer is checked first anyway.
			r := tools.Run(t, b, "", "kubectl-recover", "shutdown", "--force", "--yes")
			expiry := soon.UTC().Format(time.RFC3339)
			if r.Code != 1 || !strings.Contains(r.Stderr, "refusing, nothing was done") || !strings.Contains(r.Stderr, "expires at "+expiry) ||
				!strings.Contains(r.Stdout, "expires "+expiry) {
				t.Fatalf("annotated %v: shutdown with the signer expiring in 10 days, default --restart-by: %s", annotated, r)
			}
			if !strings.Contains(r.Stdout, "from its certificate") {
				t.Errorf("annotated %v: the expiry is not read from the certificate: %s", annotated, r)
			}
			assertNothingScheduled(t, b)
			r = tools.Run(t, b, "", "kubectl-recover", "shutdown", "--force", "--restart-by", "12d", "--yes")
			if r.Code != 1 || !strings.Contains(r.Stderr, "expires at "+expiry) {
				t.Errorf("--restart-by 12d: %s", r)
			}
			// A restart before the expiry passes the check (dry run: nothing done).
			r = tools.Run(t, b, "", "kubectl-recover", "shutdown", "--force", "--restart-by", "9d", "--dry-run")
			if r.Code != 0 || !strings.Contains(r.Stdout, "Plan (dry run, nothing changed)") {
				t.Errorf("--restart-by 9d --dry-run: %s", r)
			}
		}
		assertNothingScheduled(t, b)
		waitNoDebugNamespaces(t, b)
	})

	t.Run("a node whose debug pod cannot start", func(t *testing.T) {
		k := b.Node("worker-0").Kubelet
		if err := k.StopService(ctx); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := k.StartService(ctx); err != nil {
				t.Fatal(err)
			}
		}()
		r := tools.Run(t, b, "", "kubectl-recover", "shutdown", "--force", "--pod-start-timeout", "4s", "--yes", "-o", "json")
		var rep power.ShutdownReport
		if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil {
			t.Fatalf("%v: %s", err, r)
		}
		if r.Code != 1 || !strings.Contains(r.Stderr, "no debug pod could start on worker-0, so no shutdown was scheduled on any node") || rep.Scheduled != 0 {
			t.Fatalf("shutdown with worker-0's kubelet stopped: %s", r)
		}
		for _, n := range rep.Nodes {
			want := power.NotScheduled
			if n.Node == "worker-0" {
				want = power.StartFailed
				if !strings.Contains(n.Detail, "did not start within 4s") {
					t.Errorf("worker-0: %s", n.Detail)
				}
			}
			if n.Outcome != want {
				t.Errorf("%s: %s, want %s", n.Node, n.Outcome, want)
			}
		}
		assertNothingScheduled(t, b)
		waitNoDebugNamespaces(t, b)
		time.Sleep(2 * time.Second) // two box minutes: still nobody powers off
		assertNothingScheduled(t, b)
	})

	t.Run("dry run and no at the prompt", func(t *testing.T) {
		r := tools.Run(t, b, "", "kubectl-recover", "shutdown", "--force", "--dry-run")
		if r.Code != 0 || !strings.Contains(r.Stdout, "on the 1 worker node(s), run `chroot /host shutdown -h 1`: worker-0") ||
			!strings.Contains(r.Stdout, "on the 3 control-plane node(s), run `chroot /host shutdown -h 1`: master-0, master-1, master-2") ||
			!strings.Contains(r.Stdout, "WARNING: --force: no backup") {
			t.Errorf("dry run: %s", r)
		}
		if i, j := strings.Index(r.Stdout, "worker node(s)"), strings.Index(r.Stdout, "control-plane node(s)"); i < 0 || j < i {
			t.Errorf("the plan does not put the workers first: %s", r)
		}
		r = runOnTerminal(t, b, "n\n", "shutdown", "--force")
		if r.Code != 1 || !strings.Contains(r.Stdout, "Shut down all 4 nodes of this cluster? [y/N]") || !strings.Contains(r.Stdout, "not confirmed; nothing was done") {
			t.Errorf("answered no: %s", r)
		}
		assertNothingScheduled(t, b)
		left, err := debugnode.Leftovers(ctx, b.Kube)
		if err != nil || len(left) != 0 {
			t.Errorf("debug namespaces after a dry run and a no: %v %v", left, err)
		}
	})

	t.Run("usage errors", func(t *testing.T) {
		for _, args := range [][]string{{"--restart-by", "whenever"}, {"--restart-by", "2001-01-01T00:00:00Z"}, {"--max-backup-age", "0s"}} {
			if r := tools.Run(t, b, "", "kubectl-recover", append([]string{"shutdown", "--force"}, args...)...); r.Code != 2 {
				t.Errorf("%v: %s", args, r)
			}
		}
	})
}
