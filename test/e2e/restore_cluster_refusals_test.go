package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	configv1 "github.com/openshift/api/config/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/oc-recover/oc-recover/pkg/backup"
	"github.com/oc-recover/oc-recover/pkg/debugnode"
	"github.com/oc-recover/oc-recover/pkg/restore"
	"github.com/oc-recover/oc-recover/test/box"
	"github.com/oc-recover/oc-recover/test/internal/boxtest"
)

// backupOf takes a backup of b into a new directory.
func backupOf(t *testing.T, b *box.Box) (string, *backup.Manifest) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "backup")
	if r := tools.Run(t, b, "", "oc-recover", "backup", "--output-dir", dir); r.Code != 0 {
		t.Fatalf("backup: %s", r)
	}
	m, err := backup.ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	return dir, m
}

// changeClusterVersion changes clusterversion/version for the rest of the
// test (put back when it ends).
func changeClusterVersion(t *testing.T, b *box.Box, change func(cv *configv1.ClusterVersion)) {
	t.Helper()
	ctx := context.Background()
	orig, err := b.Config.ConfigV1().ClusterVersions().Get(ctx, "version", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cv := orig.DeepCopy()
	change(cv)
	updated, err := b.Config.ConfigV1().ClusterVersions().Update(ctx, cv, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	updated.Status = cv.Status
	if _, err := b.Config.ConfigV1().ClusterVersions().UpdateStatus(ctx, updated, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cur, err := b.Config.ConfigV1().ClusterVersions().Get(ctx, "version", metav1.GetOptions{})
		if err != nil {
			t.Error(err)
			return
		}
		cur.Spec = orig.Spec
		if cur, err = b.Config.ConfigV1().ClusterVersions().Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
			t.Error(err)
			return
		}
		cur.Status = orig.Status
		if _, err := b.Config.ConfigV1().ClusterVersions().UpdateStatus(ctx, cur, metav1.UpdateOptions{}); err != nil {
			t.Error(err)
		}
	})
}

// onRelease makes the cluster report version as installed and completed.
func onRelease(version string) func(cv *configv1.ClusterVersion) {
	return func(cv *configv1.ClusterVersion) {
		cv.Status.Desired.Version = version
		cv.Status.History = append([]configv1.UpdateHistory{{State: configv1.CompletedUpdate, Version: version, StartedTime: metav1.Now(), CompletionTime: &metav1.Time{}}}, cv.Status.History...)
	}
}

// Refusals that need a cluster in another state than the backup's: each
// changes nothing (etcd membership and data, every object, the hosts).
func TestRestoreRefusesWhatTheClusterCannotTake(t *testing.T) {
	t.Parallel()
	b := boxtest.StartBox(t, box.Options{})
	dir, _ := backupOf(t, b)

	refused := func(t *testing.T, want string, args ...string) {
		t.Helper()
		before := restoreState(t, b)
		r := runRestore(t, b, nil, append([]string{dir}, args...)...)
		if r.Code != 1 || !strings.Contains(r.Stderr, want) || !strings.Contains(r.Stderr, "nothing was changed") {
			t.Errorf("restore %v: want exit 1, nothing changed, and %q: %s", args, want, r)
		}
		if after := restoreState(t, b); after != before {
			t.Errorf("the refused restore changed the cluster or the hosts:\nbefore:\n%s\nafter:\n%s", before, after)
		}
	}
	planned := func(t *testing.T, want string, args ...string) {
		t.Helper()
		r := runRestore(t, b, nil, append([]string{dir, "--dry-run"}, args...)...)
		if r.Code != 0 || !strings.Contains(r.Stdout, want) {
			t.Errorf("restore --dry-run %v: want exit 0 and %q: %s", args, want, r)
		}
	}

	t.Run("a backup of another cluster, never", func(t *testing.T) {
		changeClusterVersion(t, b, func(cv *configv1.ClusterVersion) { cv.Spec.ClusterID = "00000000-1111-2222-3333-444444444444" })
		refused(t, "is of cluster", "--dry-run")
		refused(t, "There is no override", "--force", "--dry-run")
		// Without backup.json the snapshot alone says so.
		d := withoutManifest(t, dir)
		if r := runRestore(t, b, nil, d, "--force", "--dry-run"); r.Code != 1 || !strings.Contains(r.Stderr, "(its snapshot's clusterversions/version)") {
			t.Errorf("restore of another cluster's backup without backup.json: %s", r)
		}
	})
	t.Run("another restore under way", func(t *testing.T) {
		cms := b.Kube.CoreV1().ConfigMaps(restore.SentinelNamespace)
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: restore.SentinelPrefix + "20261201t030000z-abcd", Labels: map[string]string{debugnode.ManagedByLabel: debugnode.ManagedByValue}},
			Data: map[string]string{"id": "20261201T030000Z-abcd", "backup": "/srv/other", "recoveryNode": "master-2", "firedAt": "2026-12-01T03:00:00Z"}}
		if _, err := cms.Create(context.Background(), cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := cms.Delete(context.Background(), cm.Name, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		}()
		refused(t, "restore 20261201T030000Z-abcd of /srv/other, fired at 2026-12-01T03:00:00Z onto master-2, is under way or did not end", "--dry-run")
		refused(t, "run `oc recover restore /srv/other` to wait for it", "--yes")
	})
	t.Run("another z-stream, only with --force", func(t *testing.T) {
		changeClusterVersion(t, b, onRelease("4.14.9"))
		refused(t, "pass --force to restore this one anyway", "--dry-run")
		planned(t, "FORCED: backup of OpenShift 4.14.8 restored on 4.14.9", "--force")
	})
	t.Run("another minor release, never", func(t *testing.T) {
		changeClusterVersion(t, b, onRelease("4.15.2"))
		refused(t, "across minor releases", "--force", "--dry-run")
	})
	t.Run("during an update, only with --force", func(t *testing.T) {
		changeClusterVersion(t, b, func(cv *configv1.ClusterVersion) {
			progressing := configv1.ClusterOperatorStatusCondition{Type: configv1.OperatorProgressing, Status: configv1.ConditionTrue,
				LastTransitionTime: metav1.Now(), Message: "Working towards 4.14.9"}
			for i, c := range cv.Status.Conditions {
				if c.Type == configv1.OperatorProgressing {
					cv.Status.Conditions[i] = progressing
					return
				}
			}
			cv.Status.Conditions = append(cv.Status.Conditions, progressing)
		})
		refused(t, "the cluster is updating", "--dry-run")
		planned(t, "FORCED: restore during an update", "--force")
	})
	t.Run("a control plane hosted elsewhere", func(t *testing.T) {
		ctx := context.Background()
		for topology, want := range map[configv1.TopologyMode]string{configv1.ExternalTopologyMode: "hosted outside this cluster"} {
			infra, err := b.Config.ConfigV1().Infrastructures().Get(ctx, "cluster", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			was := infra.Status.ControlPlaneTopology
			infra.Status.ControlPlaneTopology = topology
			if _, err := b.Config.ConfigV1().Infrastructures().UpdateStatus(ctx, infra, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
			refused(t, want, "--dry-run")
			infra, err = b.Config.ConfigV1().Infrastructures().Get(ctx, "cluster", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			infra.Status.ControlPlaneTopology = was
			if _, err := b.Config.ConfigV1().Infrastructures().UpdateStatus(ctx, infra, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	})
	t.Run("not enough disk on the recovery host", func(t *testing.T) {
		restoreDisk, err := b.FillDisk("master-0", 0.5)
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := restoreDisk(); err != nil {
				t.Error(err)
			}
		}()
		refused(t, "master-0 has", "--recovery-node", "master-0", "--dry-run")
		planned(t, "recovery node: master-1", "--recovery-node", "master-1")
	})
	t.Run("with encryption on, an archive without its configuration", func(t *testing.T) {
		setBoxEncryption(t, b, configv1.EncryptionTypeAESCBC)
		encrypted, m := backupOf(t, b)
		d := withoutManifest(t, encrypted)
		rewriteArchive(t, filepath.Join(d, m.Files[1].Name), func(n string) bool { return strings.HasSuffix(n, "/secrets/encryption-config/encryption-config") })
		before := restoreState(t, b)
		r := runRestore(t, b, nil, d, "--dry-run")
		if r.Code != 1 || !strings.Contains(r.Stderr, "etcd encryption is on, but the static resources archive lacks the encryption configuration") {
			t.Errorf("restore of an encrypted backup without its configuration: %s", r)
		}
		if after := restoreState(t, b); after != before {
			t.Errorf("the refused restore changed something:\nbefore:\n%s\nafter:\n%s", before, after)
		}
		setBoxEncryption(t, b, "")
	})
	t.Run("restores done from the consoles", func(t *testing.T) {
		// One host's: it would be finished, not planned over, and on that
		// host alone.
		unmark0 := consoleMarker(t, b, "master-0")
		planned(t, "The cluster runs on the restore done on master-0's console")
		if r := runRestore(t, b, nil, dir, "--dry-run", "--recovery-node", "master-1"); r.Code != 2 || !strings.Contains(r.Stderr, "--recovery-node master-1: the cluster was restored on master-0's console") {
			t.Errorf("restore --recovery-node naming another host than the console restore's: %s", r)
		}
		// Two hosts': only one restored, and the command cannot tell which.
		unmark2 := consoleMarker(t, b, "master-2")
		refused(t, "more than one host holds a restore done from its console that was not finished", "--dry-run")
		unmark0()
		unmark2()
		planned(t, "Restore plan")
	})
	// Last: the stopped machine stays stopped.
	t.Run("a control-plane node that is not Ready", func(t *testing.T) {
		boxtest.StopMachineAndWait(t, b, "master-1")
		boxtest.AssertNodeReady(t, b, "master-1", "Unknown")
		// What master-1 holds cannot be looked at: a restore done from its
		// console would be refused the same way, never planned over.
		consoleMarker(t, b, "master-1")
		refused(t, "recovery node master-1 is not Ready", "--recovery-node", "master-1", "--dry-run")
		refused(t, "control-plane node master-1 (Ready=Unknown", "--dry-run")
		planned(t, "other control-plane hosts: master-2", "--lost-node", "master-1", "--recovery-node", "master-0")
		// A backup can still be taken, on a healthy node, but not prepared
		// for a restore: it is kept, and nothing is prepared anywhere.
		before := restoreState(t, b)
		d := filepath.Join(t.TempDir(), "backup")
		r := tools.Run(t, b, "", "oc-recover", "backup", "--output-dir", d, "--prepare-restore")
		if r.Code != 1 || !strings.Contains(r.Stderr, "the backup in "+d+" is complete and verified, but it was not prepared for a restore (--prepare-restore)") ||
			!strings.Contains(r.Stderr, "control-plane node master-1 (Ready=Unknown") || !strings.Contains(r.Stderr, "restore prepare "+d) {
			t.Errorf("backup --prepare-restore with master-1 down: %s", r)
		}
		if _, err := backup.ReadManifest(d); err != nil {
			t.Errorf("the backup refused a preparation is not kept: %v", err)
		}
		if after := restoreState(t, b); after != before {
			t.Errorf("the refused preparation changed the hosts:\nbefore:\n%s\nafter:\n%s", before, after)
		}
	})
}

// setBoxEncryption turns etcd encryption on or off and waits for the
// kube-apiserver revision that follows.
func setBoxEncryption(t *testing.T, b *box.Box, kind configv1.EncryptionType) {
	t.Helper()
	ctx := context.Background()
	cfg, err := b.Config.ConfigV1().APIServers().Get(ctx, "cluster", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kas, err := b.Operator.OperatorV1().KubeAPIServers().Get(ctx, "cluster", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Spec.Encryption.Type = kind
	if _, err := b.Config.ConfigV1().APIServers().Update(ctx, cfg, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitKubeAPIServerRolledOut(t, b, kas.Status.LatestAvailableRevision)
}

// On 4.18 the plan is the modern one: disable-etcd.sh on every
// control-plane host, etcd alone restored, no kubelet restarts and no
// redeployment of the other three operators.
func TestRestorePlanOnAModernRelease(t *testing.T) {
	t.Parallel()
	b := boxtest.StartBox(t, box.Options{Version: "4.18.3"})
	dir, _ := backupOf(t, b)
	before := restoreState(t, b)
	r := runRestore(t, b, nil, dir, "--dry-run")
	for _, want := range []string{"profile modern (OpenShift 4.18.3)", "master-1: stop etcd\n      /usr/local/bin/disable-etcd.sh", "master-0: stop etcd\n      /usr/local/bin/disable-etcd.sh",
		"/usr/local/bin/cluster-restore.sh /var/lib/oc-recover/restore/", "force a new etcd revision"} {
		if r.Code != 0 || !strings.Contains(r.Stdout, want) {
			t.Errorf("restore --dry-run on 4.18: want %q: %s", want, r)
		}
	}
	for _, not := range []string{"kube-apiserver-pod.yaml", "restart the kubelet", "kubescheduler/cluster"} {
		if strings.Contains(r.Stdout, not) {
			t.Errorf("the modern plan has %q: %s", not, r.Stdout)
		}
	}
	if after := restoreState(t, b); after != before {
		t.Errorf("restore --dry-run changed something:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// consoleCommands reads the console procedure's commands for host: the
// indented lines of every step whose "On <hosts>:" names it.
func consoleCommands(out, host string) []string {
	var cmds []string
	mine := false
	for _, line := range strings.Split(out, "\n") {
		if i := strings.Index(line, ". On "); i > 0 && i < 4 {
			hosts := strings.SplitN(line[i+len(". On "):], ":", 2)[0]
			mine = false
			for _, h := range strings.Split(hosts, ", ") {
				mine = mine || h == host
			}
			continue
		}
		if line != "" && !strings.HasPrefix(line, " ") {
			mine = false // the text after the steps
		}
		if mine && strings.HasPrefix(line, "   ") {
			cmds = append(cmds, strings.TrimSpace(line))
		}
	}
	return cmds
}

// With etcd's quorum lost the API does not answer and nothing can be
// staged: restore says so, verifies the backup, and prints the procedure
// for the hosts' consoles, rendered from the backup's own snapshot (the
// release, the control-plane nodes and their addresses). Run on the
// surviving host's console, those commands restore it: one member, holding
// what the backup held, the old data moved aside within /var.
func TestRestoreWithQuorumLostPrintsTheConsoleProcedure(t *testing.T) {
	t.Parallel()
	b := boxtest.StartBox(t, box.Options{})
	ctx := context.Background()
	configMap := func(name string) {
		t.Helper()
		if _, err := b.Kube.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	configMap("before-backup")
	dir, _ := backupOf(t, b)
	configMap("after-backup")
	if err := b.StopMachine(ctx, "master-1"); err != nil {
		t.Fatal(err)
	}
	// The second machine down takes the quorum with it: what the cluster
	// would record of it (Node NotReady, instance stopped) cannot be
	// written any more, and StopMachine says so.
	_ = b.StopMachine(ctx, "master-2")
	r := runRestore(t, b, nil, dir, "--lost-node", "master-1", "--lost-node", "master-2")
	if r.Code != 1 || !strings.Contains(r.Stderr, "the API does not answer") || !strings.Contains(r.Stderr, "the commands above do it for this cluster") {
		t.Fatalf("restore with quorum lost: %s", r)
	}
	for _, want := range []string{"(OpenShift 4.14.8, legacy profile)", "Keep master-1, master-2 off", "core@" + b.Node("master-0").IP.String() + ":/home/core/backup"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("the console procedure lacks %q:\n%s", want, r.Stdout)
		}
	}
	// A restore that this backup's journal says was fired cannot be called
	// back with the API down (the hosts may be restoring), and its status
	// can only point at the consoles.
	fired := copyDir(t, dir)
	if err := restore.WriteJournal(&restore.Journal{Plan: &restore.Plan{ID: "20261203T030000Z-feed", Backup: restore.BackupInfo{Dir: fired}, Recovery: restore.Host{Name: "master-0"}}, FiredAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if r := tools.Run(t, b, "", "oc-recover", "restore", "abort", fired); r.Code != 1 || !strings.Contains(r.Stderr, "refusing to abort, nothing was changed: the API does not answer") {
		t.Errorf("restore abort with the API down: %s", r)
	}
	if j, err := restore.InFlight(fired); err != nil || j == nil {
		t.Errorf("the refused abort ended the journal: %v %v", j, err)
	}
	if r := tools.Run(t, b, "", "oc-recover", "restore", "status", fired); r.Code != 0 || !strings.Contains(r.Stdout, "Journal: restore 20261203T030000Z-feed of "+fired) ||
		!strings.Contains(r.Stdout, "The API does not answer") || !strings.Contains(r.Stdout, "journalctl -u 'oc-recover-restore-*'") {
		t.Errorf("restore status with the API down: %s", r)
	}
	cmds := consoleCommands(r.Stdout, "master-0")
	if len(cmds) < 3 || !strings.Contains(strings.Join(cmds, "\n"), "/usr/local/bin/cluster-restore.sh /home/core/backup") {
		t.Fatalf("commands for master-0: %q\n%s", cmds, r.Stdout)
	}
	// The administrator's scp, then the commands on master-0's console.
	copied := copyDir(t, dir)
	if err := os.Rename(copied, filepath.Join(b.Node("master-0").Sandbox.Root, "home/core/backup")); err != nil {
		t.Fatal(err)
	}
	restoring := time.Now()
	for _, c := range cmds {
		if res := boxtest.HostRun(t, b, "master-0", c); res.Code != 0 {
			t.Fatalf("on master-0's console, %q: %s", c, res)
		}
	}
	etcdctl := `. /etc/kubernetes/static-pod-resources/etcd-certs/configmaps/etcd-scripts/etcd.env && ` +
		`export ETCDCTL_CACERT=$(echo $ETCDCTL_CACERT | sed s,static-pod-certs,static-pod-resources/etcd-certs,) ` +
		`ETCDCTL_CERT=$(echo $ETCDCTL_CERT | sed s,static-pod-certs,static-pod-resources/etcd-certs,) ` +
		`ETCDCTL_KEY=$(echo $ETCDCTL_KEY | sed s,static-pod-certs,static-pod-resources/etcd-certs,) ` +
		`ETCDCTL_ENDPOINTS=https://$NODE_master_0_IP:2379 && PATH=$PATH:/etc/kubernetes/static-pod-resources/bin etcdctl `
	boxtest.WaitForHost(t, b, "master-0", etcdctl+"endpoint health >/dev/null 2>&1 && echo healthy", "healthy\n")
	if res := boxtest.HostRun(t, b, "master-0", etcdctl+"member list -w simple | cut -d, -f3"); res.Stdout != " master-0\n" {
		t.Errorf("members after the restore: %s", res)
	}
	if res := boxtest.HostRun(t, b, "master-0", etcdctl+"get --prefix --keys-only /kubernetes.io/configmaps/default/ | grep backup"); res.Stdout != "/kubernetes.io/configmaps/default/before-backup\n" {
		t.Errorf("restored keys: %s", res)
	}
	// The pre-restore data is in /var/lib/etcd-backup, as the script puts
	// it; nothing went to /tmp.
	if res := boxtest.HostRun(t, b, "master-0", "test -d /var/lib/etcd-backup/member && ls -A /tmp | wc -l"); res.Code != 0 || res.Stdout != "0\n" {
		t.Errorf("after the restore: %s", res)
	}
	// The kube-apiserver the script started from the backup serves the
	// restored data, on the endpoint the installer's kubeconfig names.
	waitForRestoredData(t, ctx, b)
	// The same command, now that the API answers and master-0's kubelet
	// has reported it Ready again, finds the restore done on master-0's
	// console (its last command marked it) and would finish it rather than
	// restore again. While master-0 is not Ready, it refuses: it could not
	// look there.
	waitReadyPostedSince(t, b, "master-0", restoring)
	if r := tools.Run(t, b, "", "oc-recover", "restore", "--dry-run", dir, "--lost-node", "master-1", "--lost-node", "master-2"); r.Code != 0 ||
		!strings.Contains(r.Stdout, "The cluster runs on the restore done on master-0's console") || !strings.Contains(r.Stdout, "/var/lib/oc-recover/restore/console, restore console-") {
		t.Errorf("restore --dry-run once the API answers: %s", r)
	}
	// As a document: the restore it would finish, and nothing else on stdout.
	r = tools.Run(t, b, "", "oc-recover", "restore", "--dry-run", "-o", "json", dir, "--lost-node", "master-1", "--lost-node", "master-2")
	var pending restore.Pending
	if err := json.Unmarshal([]byte(r.Stdout), &pending); r.Code != 0 || err != nil {
		t.Fatalf("restore --dry-run -o json once the API answers (%v): %s", err, r)
	}
	if pending.What != "finish" || pending.RecoveryNode != "master-0" || pending.Dir != "/var/lib/oc-recover/restore/console" ||
		strings.Join(pending.LostNodes, ",") != "master-1,master-2" || !strings.HasPrefix(pending.Restore, "console-") || len(pending.Steps) == 0 {
		t.Errorf("restore --dry-run -o json once the API answers: %+v", pending)
	}
}

// consoleMarker leaves on node what a restore done from its console
// leaves (the marker its last command writes), until unmark.
func consoleMarker(t *testing.T, b *box.Box, node string) (unmark func()) {
	t.Helper()
	dir := filepath.Join(b.Node(node).Sandbox.Root, "var/lib/oc-recover/restore/console")
	marker := filepath.Join(dir, "state/restored")
	if err := os.MkdirAll(filepath.Dir(marker), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(marker, []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Error(err)
		}
	}
}
