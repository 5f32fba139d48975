package etcd

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// The test module checks status and restore against etcdutl on real
// snapshots; these are the damaged databases a real etcd never writes.

// revisionKey is the key bucket's key for main revision main (sub 0).
func revisionKey(main int64, tombstone bool) []byte {
	k := binary.BigEndian.AppendUint64(nil, uint64(main))
	k = append(k, '_')
	k = binary.BigEndian.AppendUint64(k, 0)
	if tombstone {
		k = append(k, 't')
	}
	return k
}

// writeSnapshot builds a bbolt database with the given buckets and appends
// the sha256 trailer, as `etcdctl snapshot save` writes a snapshot.
func writeSnapshot(t *testing.T, fill func(tx *bolt.Tx) error) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "snapshot.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(fill); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if err := os.WriteFile(path, append(data, sum[:]...), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// etcdBuckets fills the buckets every etcd 3.6 database has, with the key
// space given.
func etcdBuckets(keys map[string][]byte) func(tx *bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		for _, name := range []string{"key", "meta", "members", "members_removed", "lease", "cluster"} {
			if _, err := tx.CreateBucket([]byte(name)); err != nil {
				return err
			}
		}
		if err := tx.Bucket([]byte("members")).Put([]byte("8e9e05c52164694d"), []byte(`{"id":10276657743932975437,"peerURLs":["https://10.0.0.1:2380"],"name":"master-0"}`)); err != nil {
			return err
		}
		if err := tx.Bucket([]byte("members_removed")).Put([]byte("1234"), []byte("removed")); err != nil {
			return err
		}
		if err := tx.Bucket([]byte("meta")).Put([]byte("storageVersion"), []byte("3.6.0")); err != nil {
			return err
		}
		for k, v := range keys {
			if err := tx.Bucket([]byte("key")).Put([]byte(k), v); err != nil {
				return err
			}
		}
		return nil
	}
}

func keyValue(t *testing.T, key, value string, rev int64) []byte {
	t.Helper()
	b, err := (&mvccpb.KeyValue{Key: []byte(key), Value: []byte(value), CreateRevision: rev, ModRevision: rev, Version: 1}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVerifySnapshotReadsAndRestoresAWellFormedDatabase(t *testing.T) {
	path := writeSnapshot(t, etcdBuckets(map[string][]byte{
		string(revisionKey(2, false)): keyValue(t, "/a", "1", 2),
		string(revisionKey(3, false)): keyValue(t, "/b", "2", 3),
		string(revisionKey(4, true)):  keyValue(t, "/a", "", 4),
	}))
	r, err := VerifySnapshot(path, true, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// Entries: 3 revisions in key, 1 each in members, members_removed, meta.
	if r.Revision != 4 || r.LiveKeys != 1 || r.BucketEntries != 6 || r.StorageVersion != "3.6.0" || !r.RestoreTested || r.Hash == 0 {
		t.Fatalf("report %+v: want revision 4, 1 key alive (/a deleted), 6 bucket entries, version 3.6.0, restore tested", r)
	}

	// The restore keeps the key space, replaces the members with the new one
	// and clears the removed ones.
	dir := filepath.Join(t.TempDir(), "data")
	m := RestoreMember{Name: "m", PeerURLs: []string{"http://127.0.0.1:2380"}, ClusterToken: "t"}
	if err := RestoreDatabase(path, dir, m); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(filepath.Join(dir, "member", "snap", "db"), 0o400, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.View(func(tx *bolt.Tx) error {
		if n := tx.Bucket([]byte("key")).Stats().KeyN; n != 3 {
			t.Errorf("key space has %d revisions after the restore, want 3", n)
		}
		if n := tx.Bucket([]byte("members_removed")).Stats().KeyN; n != 0 {
			t.Errorf("%d removed members left", n)
		}
		var members []string
		_ = tx.Bucket([]byte("members")).ForEach(func(k, v []byte) error {
			members = append(members, string(k)+"="+string(v))
			return nil
		})
		if len(members) != 1 || !strings.Contains(members[0], `"name":"m"`) || strings.Contains(members[0], "master-0") {
			t.Errorf("members after the restore: %q, want the new member alone", members)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// A second restore into the same, now non-empty, data dir is refused.
	if err := RestoreDatabase(path, dir, m); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("restore into a non-empty data dir: %v", err)
	}
}

func TestVerifySnapshotRefusesDamagedDatabases(t *testing.T) {
	for _, tc := range []struct {
		name string
		fill func(tx *bolt.Tx) error
		want string
	}{
		{"a revision key of the wrong length", etcdBuckets(map[string][]byte{"short": keyValue(t, "/a", "1", 2)}), "invalid revision length"},
		{"a revision key without its separator", etcdBuckets(map[string][]byte{strings.Repeat("x", 17): keyValue(t, "/a", "1", 2)}), "invalid separator"},
		{"a value that is not a key-value record", etcdBuckets(map[string][]byte{string(revisionKey(2, false)): {0xff, 0xff, 0xff}}), "cannot unmarshal value"},
		{"no members bucket (not an etcd v3 database)", func(tx *bolt.Tx) error {
			for _, name := range []string{"key", "meta"} {
				if _, err := tx.CreateBucket([]byte(name)); err != nil {
					return err
				}
			}
			return nil
		}, "no meta or members bucket"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeSnapshot(t, tc.fill)
			scratch := t.TempDir()
			_, err := VerifySnapshot(path, true, scratch)
			if !errors.Is(err, ErrSnapshotCorrupt) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrSnapshotCorrupt mentioning %q", err, tc.want)
			}
			if left, _ := os.ReadDir(scratch); len(left) != 0 {
				t.Errorf("the test restore left %d entries in the scratch dir", len(left))
			}
		})
	}
}

func TestRestoreDatabaseRefusesASnapshotWithoutItsTrailer(t *testing.T) {
	path := writeSnapshot(t, etcdBuckets(nil))
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data[:len(data)-sha256.Size], 0o600); err != nil {
		t.Fatal(err)
	}
	err = RestoreDatabase(path, filepath.Join(t.TempDir(), "data"), restoreTestMember)
	if err == nil || !strings.Contains(err.Error(), "missing hash") {
		t.Fatalf("err = %v, want the missing hash named", err)
	}
	// A trailer that does not match.
	data[len(data)-1] ^= 0xff
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	err = RestoreDatabase(path, filepath.Join(t.TempDir(), "data"), restoreTestMember)
	if err == nil || !strings.Contains(err.Error(), "expected sha256") {
		t.Fatalf("err = %v, want the sha256 mismatch named", err)
	}
}
