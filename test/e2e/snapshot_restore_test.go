package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/oc-recover/oc-recover/pkg/etcd"
)

// TestSnapshotStatusAndRestoreMatchEtcdutl checks oc-recover's own reading
// and test restore of a snapshot (pkg/etcd, bbolt only) against etcd's
// etcdutl on a real snapshot of the box's etcd: the status (hash, revision,
// live keys, size, storage version) is the same, the live keys are those the
// member serves at the snapshot's revision, and the bucket entries are
// bbolt's count; the restored database holds exactly what etcdutl's restore
// holds, bucket by bucket; and etcd starts on a data dir with oc-recover's
// restored database and serves the snapshot's keys, with the new member
// alone.
func TestSnapshotStatusAndRestoreMatchEtcdutl(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	all, err := shared.EtcdClient()
	if err != nil {
		t.Fatal(err)
	}
	defer all.Close()
	// One member for writes and the snapshot: a member answers a write once
	// it has applied it, so its snapshot then holds every write.
	cli, err := shared.EtcdClientFor(all.Endpoints()[0])
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()

	// Keys written, overwritten, deleted (tombstones) and under a lease, so
	// the snapshot holds every kind of record; removed again at the end.
	const prefix = "/oc-recover-test/snapshot/"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = cli.Delete(ctx, prefix, clientv3.WithPrefix())
	})
	want := map[string]string{}
	for i := 0; i < 60; i++ {
		k, v := prefix+strconv.Itoa(i), fmt.Sprintf("value-%d", i)
		mustPut(ctx, t, cli, k, v)
		want[k] = v
	}
	for i := 0; i < 60; i += 3 {
		k := prefix + strconv.Itoa(i)
		if _, err := cli.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
		delete(want, k)
	}
	for i := 1; i < 60; i += 3 {
		k, v := prefix+strconv.Itoa(i), fmt.Sprintf("second-%d", i)
		mustPut(ctx, t, cli, k, v)
		want[k] = v
	}
	lease, err := cli.Grant(ctx, 3600)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Revoke(context.Background(), lease.ID)
	if _, err := cli.Put(ctx, prefix+"leased", "leased", clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	want[prefix+"leased"] = "leased"

	dir := t.TempDir()
	snap := filepath.Join(dir, "snapshot.db")
	saveSnapshot(ctx, t, cli, snap)

	// Status.
	ours, err := etcd.VerifySnapshot(snap, true, dir)
	if err != nil {
		t.Fatalf("VerifySnapshot: %v", err)
	}
	if !ours.RestoreTested {
		t.Fatal("VerifySnapshot did not report its test restore")
	}
	mgr := snapshot.NewV3(zap.NewNop())
	theirs, err := mgr.Status(snap)
	if err != nil {
		t.Fatalf("etcdutl status: %v", err)
	}
	got := []any{ours.Hash, ours.Revision, ours.LiveKeys, ours.DBSize, ours.StorageVersion}
	exp := []any{theirs.Hash, theirs.Revision, theirs.TotalKey, theirs.TotalSize, theirs.Version}
	if !reflect.DeepEqual(got, exp) {
		t.Fatalf("status (hash, revision, live keys, size, version): oc-recover %v, etcdutl %v", got, exp)
	}
	// etcdutl 3.6's TotalKey is the live-key count; check it also against
	// the member: the keys it serves at the snapshot's revision.
	count, err := cli.Get(ctx, "\x00", clientv3.WithFromKey(), clientv3.WithCountOnly(), clientv3.WithRev(ours.Revision))
	if err != nil {
		t.Fatalf("count the keys at revision %d: %v", ours.Revision, err)
	}
	if int64(ours.LiveKeys) != count.Count {
		t.Fatalf("oc-recover counts %d live keys, etcd serves %d at revision %d", ours.LiveKeys, count.Count, ours.Revision)
	}
	// etcdctl 3.4/3.5's totalKey (every entry of every bucket, counted in
	// the walk that hashes them) is no longer what etcdutl 3.6 reports, and
	// that etcdutl cannot be linked next to 3.6's: bbolt's own count of
	// each bucket's keys stands in for it.
	if entries := boltKeyCount(t, snap); ours.BucketEntries != entries || entries <= ours.LiveKeys {
		t.Fatalf("oc-recover counts %d bucket entries, bbolt %d (live keys %d)", ours.BucketEntries, entries, ours.LiveKeys)
	}
	t.Logf("status: hash %d, revision %d, %d live keys, %d bucket entries, %d bytes, storage version %q", ours.Hash, ours.Revision, ours.LiveKeys, ours.BucketEntries, ours.DBSize, ours.StorageVersion)

	// Restore, both ways, as the same new member.
	peerPort, clientPort := freePort(t), freePort(t)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(peerPort)
	member := etcd.RestoreMember{Name: "restored", PeerURLs: []string{peerURL}, ClusterToken: "oc-recover-e2e"}
	oursDir, theirsDir := filepath.Join(dir, "ours"), filepath.Join(dir, "theirs")
	if err := etcd.RestoreDatabase(snap, oursDir, member); err != nil {
		t.Fatalf("RestoreDatabase: %v", err)
	}
	if err := mgr.Restore(snapshot.RestoreConfig{
		SnapshotPath:        snap,
		Name:                member.Name,
		OutputDataDir:       theirsDir,
		PeerURLs:            member.PeerURLs,
		InitialCluster:      member.Name + "=" + peerURL,
		InitialClusterToken: member.ClusterToken,
	}); err != nil {
		t.Fatalf("etcdutl restore: %v", err)
	}
	oursDB, theirsDB := filepath.Join(oursDir, "member", "snap", "db"), filepath.Join(theirsDir, "member", "snap", "db")
	a, b := dumpBolt(t, oursDB), dumpBolt(t, theirsDB)
	if !reflect.DeepEqual(a, b) {
		for name := range mergeKeys(a, b) {
			if !reflect.DeepEqual(a[name], b[name]) {
				t.Errorf("bucket %q differs:\n oc-recover %q\n etcdutl    %q", name, a[name], b[name])
			}
		}
		t.Fatal("the restored databases differ")
	}
	t.Logf("restored databases identical: %d buckets, %d keys in the key space", len(a), len(a["key"]))

	// etcd starts on etcdutl's WAL and raft snapshot with oc-recover's database.
	copyFile(t, oursDB, theirsDB)
	cfg := embed.NewConfig()
	cfg.Name = member.Name
	cfg.Dir = theirsDir
	cfg.Logger, cfg.LogLevel, cfg.LogOutputs = "zap", "error", []string{filepath.Join(dir, "etcd.log")}
	pu, _ := url.Parse(peerURL)
	cu, _ := url.Parse("http://127.0.0.1:" + strconv.Itoa(clientPort))
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.InitialCluster = member.Name + "=" + peerURL
	cfg.InitialClusterToken = member.ClusterToken
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatalf("etcd on the restored data dir: %v", err)
	}
	defer e.Close()
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		t.Fatalf("etcd on the restored data dir: %v", err)
	case <-ctx.Done():
		t.Fatal("etcd on the restored data dir did not become ready")
	}
	rc, err := clientv3.New(clientv3.Config{Endpoints: []string{cu.String()}, DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	resp, err := rc.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		t.Fatalf("read the restored keys: %v", err)
	}
	served := map[string]string{}
	for _, kv := range resp.Kvs {
		served[string(kv.Key)] = string(kv.Value)
	}
	if !reflect.DeepEqual(served, want) {
		t.Fatalf("restored etcd serves %d keys under %s, want %d:\n%v\nwant %v", len(served), prefix, len(want), served, want)
	}
	if resp.Header.Revision < ours.Revision {
		t.Errorf("restored etcd is at revision %d, the snapshot at %d", resp.Header.Revision, ours.Revision)
	}
	ml, err := rc.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ml.Members) != 1 || ml.Members[0].Name != member.Name || !reflect.DeepEqual(ml.Members[0].PeerURLs, member.PeerURLs) {
		t.Fatalf("restored etcd's members: %v, want %s alone", ml.Members, member.Name)
	}
	t.Logf("etcd started on the restored database: %d keys served, revision %d, member %x", len(served), resp.Header.Revision, ml.Members[0].ID)
}

func mustPut(ctx context.Context, t *testing.T, cli *clientv3.Client, k, v string) {
	t.Helper()
	if _, err := cli.Put(ctx, k, v); err != nil {
		t.Fatal(err)
	}
}

// saveSnapshot writes the member's snapshot stream (the database and its
// sha256 trailer, as `etcdctl snapshot save` writes it) to path.
func saveSnapshot(ctx context.Context, t *testing.T, cli *clientv3.Client, path string) {
	t.Helper()
	rc, err := cli.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.Copy(f, rc); err != nil {
		t.Fatal(err)
	}
}

// boltKeyCount sums bbolt's statistics of keys over every bucket.
func boltKeyCount(t *testing.T, path string) int {
	t.Helper()
	db, err := bolt.Open(path, 0o400, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	n := 0
	if err := db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(_ []byte, b *bolt.Bucket) error {
			n += b.Stats().KeyN
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// dumpBolt reads every bucket of a bbolt database.
func dumpBolt(t *testing.T, path string) map[string]map[string]string {
	t.Helper()
	db, err := bolt.Open(path, 0o400, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	out := map[string]map[string]string{}
	if err := db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			m := map[string]string{}
			out[string(name)] = m
			return b.ForEach(func(k, v []byte) error {
				m[string(k)] = string(v)
				return nil
			})
		})
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func mergeKeys[V any](a, b map[string]V) map[string]bool {
	out := map[string]bool{}
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
