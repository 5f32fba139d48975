package backup

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A backup.json written before the live-key count was named liveKeys calls
// it totalKeys; it still reads, as the live-key count.
func TestReadManifestReadsTheOldTotalKeys(t *testing.T) {
	dir := t.TempDir()
	old := `{
  "formatVersion": 1,
  "clusterID": "5980b082-e0b1-40f7-b5c5-c97b336eb58c",
  "version": "4.14.8",
  "node": "master-0",
  "hostScript": "/usr/local/bin/cluster-backup.sh",
  "startedAt": "2026-11-22T00:55:44Z",
  "completedAt": "2026-11-22T00:55:46Z",
  "timestamp": "2026-11-22_005545",
  "etcd": {"revision": 318, "hash": 1234567, "totalKeys": 289, "dbSize": 1466368, "restoreTested": true},
  "files": [{"name": "snapshot_2026-11-22_005545.db", "kind": "snapshot", "size": 1466400, "sha256": "a71d"}],
  "tool": "oc-recover v0.1.0"
}`
	if err := os.WriteFile(filepath.Join(dir, ManifestName), []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	m, err := ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := EtcdInfo{Revision: 318, Hash: 1234567, LiveKeys: 289, DBSize: 1466368, RestoreTested: true}
	if m.Etcd != want || m.Node != "master-0" || len(m.Files) != 1 {
		t.Fatalf("read %+v, etcd %+v; want etcd %+v", m, m.Etcd, want)
	}
}

// A new backup.json names both counts and not totalKeys, and reads back as
// written.
func TestManifestWritesLiveKeysAndBucketEntries(t *testing.T) {
	dir := t.TempDir()
	in := &Manifest{FormatVersion: 1, Node: "master-0", Etcd: EtcdInfo{Revision: 318, Hash: 7, LiveKeys: 289, BucketEntries: 407, DBSize: 1466368, RestoreTested: true}}
	if err := WriteManifest(dir, in); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{`"liveKeys": 289`, `"bucketEntries": 407`} {
		if !strings.Contains(string(data), s) {
			t.Errorf("backup.json lacks %s:\n%s", s, data)
		}
	}
	if strings.Contains(string(data), "totalKeys") {
		t.Errorf("backup.json still says totalKeys:\n%s", data)
	}
	out, err := ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	if out.Etcd != in.Etcd {
		t.Fatalf("read back %+v, wrote %+v", out.Etcd, in.Etcd)
	}
}
