package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	configv1 "github.com/openshift/api/config/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/oc-recover/oc-recover/pkg/backup"
	"github.com/oc-recover/oc-recover/test/box"
)

// The whole of chapter 1 "Backing up etcd" of the OpenShift 4.5
// documentation, Backup and restore, in one command: the backup script runs
// on a healthy control-plane host, both files land here verified, backup.json
// describes them, and nothing is left on the host or in the cluster.
func TestBackupTakesAVerifiedBackup(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "backup")
	r := tools.Run(t, shared, "", "kubectl-recover", "backup", "--output-dir", dir)
	if r.Code != 0 {
		t.Fatalf("backup failed: %s", r)
	}
	m, err := backup.ReadManifest(dir)
	if err != nil {
		t.Fatalf("%v\n%s", err, r)
	}
	if len(m.Files) != 2 || m.Files[0].Kind != backup.KindSnapshot || m.Files[1].Kind != backup.KindStaticResources {
		t.Fatalf("files = %+v", m.Files)
	}
	if m.Version != "4.14.8" || m.ClusterID != shared.ClusterID || m.Node != "master-0" || !m.Etcd.RestoreTested || m.Etcd.Revision == 0 || m.Etcd.LiveKeys < 100 || m.Etcd.BucketEntries <= m.Etcd.LiveKeys {
		t.Errorf("backup.json = %+v", m)
	}
	for _, f := range m.Files {
		fi, err := os.Stat(filepath.Join(dir, f.Name))
		if err != nil || fi.Size() != f.Size || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v size %d mode %v", f.Name, err, f.Size, fi.Mode())
		}
	}
	for _, want := range []string{"found latest etcd: /etc/kubernetes/static-pod-resources/etcd-pod-", "Snapshot saved at", " live keys, test restore OK"} {
		if !strings.Contains(r.Stdout+r.Stderr, want) {
			t.Errorf("output lacks %q:\n%s", want, r)
		}
	}
	// The host copy is gone, and so are the debug namespace and pod.
	hostBackups, _ := os.ReadDir(filepath.Join(shared.Node("master-0").Sandbox.Root, "home/core/assets/backup"))
	for _, e := range hostBackups {
		if strings.HasPrefix(e.Name(), "oc-recover-") {
			t.Errorf("host copy %s left on master-0", e.Name())
		}
	}
	assertNoLeftovers(t, ctx)

	// backup verify agrees, in every output format.
	r = tools.Run(t, shared, "", "kubectl-recover", "backup", "verify", dir)
	if r.Code != 0 || !strings.Contains(r.Stdout, "complete and restorable") {
		t.Errorf("backup verify: %s", r)
	}
	r = tools.Run(t, shared, "", "kubectl-recover", "backup", "verify", dir, "-o", "json")
	var v backup.Verification
	if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &v) != nil || v.Snapshot.Revision != m.Etcd.Revision {
		t.Errorf("backup verify -o json: %s", r)
	}
	r = tools.Run(t, shared, "", "kubectl-recover", "backup", "list", filepath.Dir(dir))
	if r.Code != 0 || !strings.Contains(r.Stdout, "backup") || !strings.Contains(r.Stdout, "4.14.8") || !strings.Contains(r.Stdout, "master-0") {
		t.Errorf("backup list: %s", r)
	}
}

func assertNoLeftovers(t *testing.T, ctx context.Context) {
	t.Helper()
	waitNoLeftovers(t, ctx, shared.Kube)
}

// With etcd encryption on, the backup says to keep the static resources
// (which hold the keys) apart from the snapshot, and records it.
func TestBackupAdvisesOnEncryption(t *testing.T) {
	ctx := context.Background()
	setEncryption := func(kind configv1.EncryptionType) {
		cfg, err := shared.Config.ConfigV1().APIServers().Get(ctx, "cluster", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		kas, err := shared.Operator.OperatorV1().KubeAPIServers().Get(ctx, "cluster", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cfg.Spec.Encryption.Type = kind
		if _, err := shared.Config.ConfigV1().APIServers().Update(ctx, cfg, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		// The operator rolls out a kube-apiserver revision that carries the
		// encryption configuration (or no longer does); wait for it.
		waitKubeAPIServerRolledOut(t, shared, kas.Status.LatestAvailableRevision)
	}
	setEncryption(configv1.EncryptionTypeAESCBC)
	defer setEncryption("")
	dir := filepath.Join(t.TempDir(), "backup")
	r := tools.Run(t, shared, "", "kubectl-recover", "backup", "--output-dir", dir)
	if r.Code != 0 || !strings.Contains(r.Stdout, "etcd encryption is on (aescbc)") || !strings.Contains(r.Stdout, "Store it apart from the snapshot") {
		t.Fatalf("backup with encryption on: %s", r)
	}
	m, err := backup.ReadManifest(dir)
	if err != nil || m.EncryptionType != "aescbc" {
		t.Fatalf("backup.json encryptionType = %q (%v)", m.EncryptionType, err)
	}
	kas := staticPodRevisions(t, filepath.Join(dir, m.Files[1].Name))["kube-apiserver"]
	if !archiveHolds(t, filepath.Join(dir, m.Files[1].Name), strings.TrimPrefix(kas, "/etc/kubernetes/")+"/secrets/encryption-config/encryption-config") {
		t.Errorf("the archive lacks %s's encryption configuration", kas)
	}
}

// waitKubeAPIServerRolledOut waits until the kube-apiserver operator has
// rolled a revision newer than after out to every node and its
// ClusterOperator reports Progressing=False.
func waitKubeAPIServerRolledOut(t *testing.T, b *box.Box, after int32) {
	t.Helper()
	err := box.WaitFor(context.Background(), 2*time.Minute, "kube-apiserver rolled out past revision "+fmt.Sprint(after), func(ctx context.Context) (bool, string, error) {
		kas, err := b.Operator.OperatorV1().KubeAPIServers().Get(ctx, "cluster", metav1.GetOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		latest := kas.Status.LatestAvailableRevision
		for _, n := range kas.Status.NodeStatuses {
			if n.CurrentRevision != latest {
				return false, fmt.Sprintf("%s at %d of %d", n.NodeName, n.CurrentRevision, latest), nil
			}
		}
		return latest > after, fmt.Sprintf("latest %d", latest), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	waitProgressing(t, b, "kube-apiserver", configv1.ConditionFalse)
}

// archiveHolds says whether a static resources archive holds a file.
func archiveHolds(t *testing.T, archive, name string) bool {
	t.Helper()
	for _, n := range archiveEntries(t, archive) {
		if strings.TrimPrefix(n, "./") == name {
			return true
		}
	}
	return false
}
