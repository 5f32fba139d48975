package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/oc-recover/oc-recover/pkg/backup"
	"github.com/oc-recover/oc-recover/pkg/csr/csrtest"
	"github.com/oc-recover/oc-recover/pkg/health"
	"github.com/oc-recover/oc-recover/test/box"
	"github.com/oc-recover/oc-recover/test/csrload"
	"github.com/oc-recover/oc-recover/test/internal/boxtest"
)

// healthQuota is the etcd backend quota of the health test's box: small
// enough to fill, large enough that a database of 100 MiB (where the
// defragmentation controller starts to judge) is below the quota alert.
const healthQuota = 256 << 20

// runHealth runs `health -o json` with args and reads its report.
func runHealth(t *testing.T, b *box.Box, args ...string) (health.Report, boxtest.Result) {
	t.Helper()
	r := tools.Run(t, b, "", "kubectl-recover", append([]string{"health", "-o", "json"}, args...)...)
	var rep health.Report
	if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil {
		t.Fatalf("health -o json: %v\n%s", err, r)
	}
	return rep, r
}

// wantChecks asserts the report: the checks in want have those
// severities (and evidence and fix containing the given text), every other
// check not in mayFail is OK, and the exit code is the verdict's.
func wantChecks(t *testing.T, rep health.Report, r boxtest.Result, want map[string]expect, mayFail ...string) {
	t.Helper()
	byID := map[string]health.Result{}
	for _, c := range rep.Checks {
		byID[c.ID] = c
	}
	for id, w := range want {
		c, ok := byID[id]
		if !ok {
			t.Errorf("no check %s in the report", id)
			continue
		}
		ev := strings.Join(c.Evidence, "\n")
		if c.Severity != w.severity || !strings.Contains(ev, w.evidence) || !strings.Contains(c.Fix, w.fix) {
			t.Errorf("%s: %s %q, evidence %q, fix %q; want %s with evidence %q and fix %q", id, c.Severity, c.Summary, ev, c.Fix, w.severity, w.evidence, w.fix)
		}
	}
	allowed := map[string]bool{}
	for _, id := range mayFail {
		allowed[id] = true
	}
	for _, c := range rep.Checks {
		if _, named := want[c.ID]; !named && !allowed[c.ID] && c.Severity != health.OK {
			t.Errorf("%s: %s %q %v (should be OK)", c.ID, c.Severity, c.Summary, c.Evidence)
		}
	}
	code := map[health.Severity]int{health.OK: 0, health.Warn: 3, health.Fail: 1}[rep.Verdict]
	if r.Code != code {
		t.Errorf("exit %d for verdict %s, want %d\n%s", r.Code, rep.Verdict, code, r.Stderr)
	}
}

type expect struct {
	severity      health.Severity
	evidence, fix string
}

// waitHealthy waits, bounded, until every check is OK again after a fault
// is undone (operators and nodes settle on their own time).
func waitHealthy(t *testing.T, b *box.Box, args ...string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		rep, r := runHealth(t, b, args...)
		if rep.Verdict == health.OK && r.Code == 0 {
			return
		}
		if time.Now().After(deadline) {
			var bad []string
			for _, c := range rep.Checks {
				if c.Severity != health.OK {
					bad = append(bad, c.ID+" "+string(c.Severity)+" "+c.Summary+" "+strings.Join(c.Evidence, "; "))
				}
			}
			t.Fatalf("the box did not become healthy again in 3m: %s", strings.Join(bad, "\n"))
		}
		time.Sleep(2 * time.Second)
	}
}

// The catalogue against one box: healthy first, then each fault injected
// alone and undone. The right check fails or warns, with the right
// evidence and fix, the others stay OK, and the exit code follows.
func TestHealth(t *testing.T) {
	t.Parallel()
	b := boxtest.StartBox(t, box.Options{Workers: 1, EtcdQuotaBytes: healthQuota})
	ctx := context.Background()
	backups := t.TempDir()
	if r := tools.Run(t, b, "", "kubectl-recover", "backup", "--output-dir", filepath.Join(backups, "first")); r.Code != 0 {
		t.Fatalf("backup: %s", r)
	}
	dir := []string{"--backup-dir", backups}

	t.Run("healthy", func(t *testing.T) {
		waitHealthy(t, b, dir...)
		rep, r := runHealth(t, b, dir...)
		wantChecks(t, rep, r, nil)
		if len(rep.Checks) < 30 {
			t.Errorf("only %d checks ran", len(rep.Checks))
		}
		table := tools.Run(t, b, "", "kubectl-recover", append([]string{"health"}, dir...)...)
		if table.Code != 0 || !strings.Contains(table.Stdout, "Verdict: OK (") || !strings.Contains(table.Stdout, "etcd.quota") {
			t.Errorf("table: %s", table)
		}
		only := tools.Run(t, b, "", "kubectl-recover", "health", "-o", "json", "--only", "etcd", "--skip", "etcd.alarms")
		var sub health.Report
		_ = json.Unmarshal([]byte(only.Stdout), &sub)
		for _, c := range sub.Checks {
			if health.Area(c.ID) != "etcd" || c.ID == "etcd.alarms" {
				t.Errorf("--only etcd --skip etcd.alarms ran %s", c.ID)
			}
		}
		if len(sub.Checks) != 5 {
			t.Errorf("--only etcd --skip etcd.alarms: %d checks: %s", len(sub.Checks), only)
		}
	})

	t.Run("quorum guard override left on", func(t *testing.T) {
		patch := func(v string) {
			t.Helper()
			body := `{"spec":{"unsupportedConfigOverrides":` + v + `}}`
			if _, err := b.Operator.OperatorV1().Etcds().Patch(ctx, "cluster", types.MergePatchType, []byte(body), metav1.PatchOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		patch(`{"useUnsupportedUnsafeNonHANonProductionUnstableEtcd":true}`)
		rep, r := runHealth(t, b, dir...)
		patch(`null`)
		wantChecks(t, rep, r, map[string]expect{"staticpods.overrides": {health.Warn, "useUnsupportedUnsafeNonHANonProductionUnstableEtcd", "kubectl recover member replace"}})
	})

	t.Run("degraded operator", func(t *testing.T) {
		b.DegradeOperator("authentication", "OAuthServerRouteEndpointAccessibleControllerDegraded: route not reachable")
		waitFor(t, "authentication to report Degraded", func() bool {
			rep, _ := runHealth(t, b, "--only", "co")
			return rep.Verdict == health.Fail
		})
		rep, r := runHealth(t, b, dir...)
		b.DegradeOperator("authentication", "")
		wantChecks(t, rep, r, map[string]expect{"co": {health.Fail, "authentication", ""}})
		waitHealthy(t, b, dir...)
	})

	t.Run("forged CSR pending", func(t *testing.T) {
		// master-1 asking a client certificate in master-0's name: a
		// takeover that pkg/csr refuses.
		forged := csrtest.Renewal(csrtest.Host{Name: "master-0", IP: b.Node("master-0").IP})
		forged.Identity = csrtest.NodeIdentity("master-1")
		names, err := csrload.Create(ctx, b.Admin, []csrtest.Case{forged}, 1)
		if err != nil {
			t.Fatal(err)
		}
		rep, r := runHealth(t, b, dir...)
		if err := b.Kube.CertificatesV1().CertificateSigningRequests().Delete(ctx, names[0], metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		wantChecks(t, rep, r, map[string]expect{"csr.pending": {health.Warn, names[0] + " (client-renewal for master-0", "oc adm certificate deny"}})
	})

	t.Run("degraded machine config pool", func(t *testing.T) {
		if err := b.DegradePool(ctx, "worker", "unexpected on-disk state validating against rendered-worker"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the worker pool to report Degraded", func() bool {
			rep, _ := runHealth(t, b, "--only", "mcp")
			return rep.Verdict == health.Fail
		})
		rep, r := runHealth(t, b, dir...)
		if err := b.DegradePool(ctx, "worker", ""); err != nil {
			t.Fatal(err)
		}
		wantChecks(t, rep, r, map[string]expect{"mcp": {health.Fail, "worker", ""}})
		waitHealthy(t, b, dir...)
	})

	t.Run("webhook without endpoints", func(t *testing.T) {
		remove, err := b.AddUnreachableWebhook(ctx, "box-policy")
		if err != nil {
			t.Fatal(err)
		}
		rep, r := runHealth(t, b, dir...)
		if err := remove(ctx); err != nil {
			t.Fatal(err)
		}
		wantChecks(t, rep, r, map[string]expect{"webhooks": {health.Warn, "box-policy", ""}})
	})

	t.Run("unmanaged certificate expiring", func(t *testing.T) {
		ca, err := box.NewCAValidFor("custom-ingress", time.Now().Add(-300*24*time.Hour), time.Now().Add(20*24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "custom-ingress-cert", Namespace: "openshift-config"}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{corev1.TLSCertKey: ca.CertPEM, corev1.TLSPrivateKeyKey: ca.KeyPEM}}
		if _, err := b.Kube.CoreV1().Secrets("openshift-config").Create(ctx, secret, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		rep, r := runHealth(t, b, dir...)
		if err := b.Kube.CoreV1().Secrets("openshift-config").Delete(ctx, secret.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		wantChecks(t, rep, r, map[string]expect{"certs.unmanaged": {health.Warn, "openshift-config/custom-ingress-cert", ""}})
	})

	t.Run("expired kubelet signer", func(t *testing.T) {
		old, err := b.Kube.CoreV1().Secrets(box.KubeletSignerNamespace).Get(ctx, box.KubeletSignerSecret, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.ReplaceKubeletSigner(ctx, time.Now().Add(-400*24*time.Hour), time.Now().Add(-2*24*time.Hour), true); err != nil {
			t.Fatal(err)
		}
		rep, r := runHealth(t, b, dir...)
		restoreSecret(t, b, old)
		wantChecks(t, rep, r, map[string]expect{
			"certs.kubeletsigner": {health.Fail, "", ""},
			"certs.signers":       {health.Fail, box.KubeletSignerNamespace + "/" + box.KubeletSignerSecret, ""},
		})
	})

	t.Run("backups", func(t *testing.T) {
		rep, r := runHealth(t, b, "--backup-dir", t.TempDir())
		wantChecks(t, rep, r, map[string]expect{"backup.local": {health.Fail, "", "kubectl recover backup"}})
		for name, edit := range map[string]func(m map[string]any){
			"another z-stream": func(m map[string]any) { m["version"] = "4.14.7" },
			"another cluster":  func(m map[string]any) { m["clusterID"] = "00000000-0000-4000-8000-000000000000" },
		} {
			other := t.TempDir()
			copyBackup(t, filepath.Join(backups, "first"), filepath.Join(other, "first"), edit)
			rep, r := runHealth(t, b, "--backup-dir", other)
			if c := find(rep, "backup.local"); c.Severity != health.Fail {
				t.Errorf("%s: backup.local %s %q %v", name, c.Severity, c.Summary, c.Evidence)
			}
			wantChecks(t, rep, r, map[string]expect{"backup.local": {health.Fail, "", ""}})
		}
	})

	t.Run("etcd fragmented", func(t *testing.T) {
		if _, err := b.FillEtcd(ctx, "/box-fill/", 120<<20); err != nil {
			t.Fatal(err)
		}
		if err := b.DeleteEtcdPrefix(ctx, "/box-fill/"); err != nil {
			t.Fatal(err)
		}
		compactEtcd(t, b) // frees the deleted values' pages; only a defragmentation returns them
		// Each member frees them as it applies the compaction, in batches.
		// Each member counts the freed pages as its own later commits find
		// them released.
		waitFor(t, "every member to report its freed pages", func() bool {
			rep, _ := runHealth(t, b, "--only", "etcd.fragmentation")
			return find(rep, "etcd.fragmentation").Summary == "fragmented: master-0, master-1, master-2"
		})
		rep, r := runHealth(t, b, dir...)
		wantChecks(t, rep, r, map[string]expect{"etcd.fragmentation": {health.Warn, "% fragmented", "Defragmenting etcd data"}})
		if err := b.CompactAndDefragEtcd(ctx); err != nil {
			t.Fatal(err)
		}
		waitHealthy(t, b, dir...)
	})

	t.Run("etcd near its quota, then out of space", func(t *testing.T) {
		// About 185 MiB of database once written: 72 % of the quota.
		if _, err := b.FillEtcd(ctx, "/box-fill/", 150<<20); err != nil {
			t.Fatal(err)
		}
		rep, r := runHealth(t, b, dir...)
		wantChecks(t, rep, r, map[string]expect{"etcd.quota": {health.Warn, "of quota 256 MiB", "Defragmenting etcd data"}})

		_, err := b.FillEtcd(ctx, "/box-fill/more-", healthQuota)
		if err == nil {
			t.Fatal("etcd took more than its quota")
		}
		rep, r = runHealth(t, b, dir...)
		wantChecks(t, rep, r, map[string]expect{
			"etcd.alarms": {health.Fail, "NOSPACE", "disarm"},
			"etcd.quota":  {health.Fail, "of quota 256 MiB", ""},
		}, "nodes.ready", "co", "api.readyz", "etcd.fragmentation")
		if err := b.DeleteEtcdPrefix(ctx, "/box-fill/"); err != nil {
			t.Fatal(err)
		}
		if err := b.CompactAndDefragEtcd(ctx); err != nil {
			t.Fatal(err)
		}
		if err := b.DisarmEtcdAlarms(ctx); err != nil {
			t.Fatal(err)
		}
		waitHealthy(t, b, dir...)
	})

	t.Run("crash-looping etcd", func(t *testing.T) {
		if err := b.CrashLoopEtcd("master-1", true); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "master-1's etcd to crash-loop", func() bool {
			rep, _ := runHealth(t, b, "--only", "etcd.members")
			return rep.Verdict == health.Fail
		})
		rep, r := runHealth(t, b, dir...)
		if err := b.CrashLoopEtcd("master-1", false); err != nil {
			t.Fatal(err)
		}
		wantChecks(t, rep, r, map[string]expect{
			"etcd.members": {health.Fail, "master-1: EtcdPodCrashlooping", "kubectl recover member replace master-1"},
			"etcd.health":  {health.Fail, "master-1", ""},
		}, "etcd.status", "etcd.quota", "etcd.fragmentation", "co", "staticpods.etcd")
		waitHealthy(t, b, dir...)
	})

	// Last: the box is not brought back.
	t.Run("stopped machine", func(t *testing.T) {
		boxtest.StopMachineAndWait(t, b, "master-2")
		rep, r := runHealth(t, b, dir...)
		wantChecks(t, rep, r, map[string]expect{
			"nodes.ready":  {health.Fail, "master-2", ""},
			"etcd.members": {health.Fail, "master-2", "kubectl recover member replace master-2"},
		}, "etcd.health", "etcd.status", "etcd.quota", "etcd.fragmentation", "co", "api.instances", "staticpods.etcd",
			"staticpods.kubeapiserver", "staticpods.kubecontrollermanager", "staticpods.kubescheduler", "machines", "mcp", "etcd.alarms")
	})
}

func find(rep health.Report, id string) health.Result {
	for _, c := range rep.Checks {
		if c.ID == id {
			return c
		}
	}
	return health.Result{}
}

// waitFor polls cond for up to two minutes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 2m for %s", what)
		}
		time.Sleep(time.Second)
	}
}

// restoreSecret puts a secret back as it was.
func restoreSecret(t *testing.T, b *box.Box, old *corev1.Secret) {
	t.Helper()
	ctx := context.Background()
	cur, err := b.Kube.CoreV1().Secrets(old.Namespace).Get(ctx, old.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cur.Data, cur.Annotations = old.Data, old.Annotations
	if _, err := b.Kube.CoreV1().Secrets(old.Namespace).Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// copyBackup copies a backup directory, with its backup.json edited.
func copyBackup(t *testing.T, from, to string, edit func(map[string]any)) {
	t.Helper()
	if err := os.MkdirAll(to, 0o700); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if e.Name() == backup.ManifestName {
			var m map[string]any
			if err := json.Unmarshal(data, &m); err != nil {
				t.Fatal(err)
			}
			edit(m)
			if data, err = json.Marshal(m); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// compactEtcd compacts etcd's history at its current revision, as the
// kube-apiserver does every five minutes.
func compactEtcd(t *testing.T, b *box.Box) {
	t.Helper()
	cli, err := b.EtcdClient()
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resp, err := cli.Get(ctx, "compact-at")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
}
