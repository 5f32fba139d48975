package etcd

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/coreos/go-semver/semver"
	bolt "go.etcd.io/bbolt"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// The snapshot is etcd's bbolt database. Reading it and restoring it are done
// here with bbolt alone, following etcd 3.6's storage layout (etcd
// server/storage/schema and mvcc) and `etcdutl snapshot status|restore`
// step for step. etcd's server packages are not linked: they register
// metrics and build tables when the program starts, which every
// `oc recover` command would pay for. The test module checks both functions
// against etcdutl's on real snapshots, and starts etcd on a restored data dir.

// The buckets and meta keys of etcd's backend (server/storage/schema).
var (
	bucketKey            = []byte("key")
	bucketMeta           = []byte("meta")
	bucketMembers        = []byte("members")
	bucketMembersRemoved = []byte("members_removed")

	metaConsistentIndex = []byte("consistent_index")
	metaTerm            = []byte("term")
	metaStorageVersion  = []byte("storageVersion")
)

// A revision key in the key bucket is main revision, '_', sub revision (8
// bytes big-endian each), plus a trailing 't' for a deletion (tombstone).
const (
	revisionKeyLen  = 8 + 1 + 8
	tombstoneKeyLen = revisionKeyLen + 1
)

// snapshotStatusReport is what `etcdutl snapshot status` reports.
type snapshotStatusReport struct {
	Hash     uint32
	Revision int64
	// LiveKeys counts the keys alive at the newest revision: put and not
	// deleted since. etcdutl 3.6 reports this as totalKey.
	LiveKeys int
	// BucketEntries counts every key/value entry of every bucket (all
	// revisions of the key space, tombstones, leases, members, meta...).
	// etcdctl/etcdutl 3.4 and 3.5 report this as totalKey.
	BucketEntries  int
	DBSize         int64
	StorageVersion string
	// Values holds the newest value of each wanted key alive at Revision
	// (absent: never written, or deleted).
	Values map[string][]byte
}

// snapshotStatus reads the database read-only as `etcdutl snapshot status`
// does: bbolt's consistency check, a crc32 (Castagnoli) over every bucket
// name, key and value, the newest revision, the keys alive at it, and the
// entries of all buckets (etcdctl 3.4/3.5's totalKey). Every
// revision key and every value of the key space must decode, or it fails.
// The values of the wanted keys are kept on the way; a wanted key that
// ends with "/" stands for every key under it.
func snapshotStatus(path string, wanted ...string) (snapshotStatusReport, error) {
	st := snapshotStatusReport{Values: map[string][]byte{}}
	want := make(map[string]bool, len(wanted))
	var prefixes []string
	for _, k := range wanted {
		if strings.HasSuffix(k, "/") {
			prefixes = append(prefixes, k)
		}
		want[k] = true
	}
	wanted1 := func(key string) bool {
		if want[key] {
			return true
		}
		for _, p := range prefixes {
			if strings.HasPrefix(key, p) {
				return true
			}
		}
		return false
	}
	// Read-only opens neither take a lock nor write, so a file being looked
	// at elsewhere is not disturbed; etcdutl opens it the same way.
	db, err := bolt.Open(path, 0o400, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return st, err
	}
	defer db.Close()
	h := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	alive := make(map[string]struct{})
	err = db.View(func(tx *bolt.Tx) error {
		var problems []string
		for err := range tx.Check() {
			problems = append(problems, err.Error())
		}
		if len(problems) > 0 {
			return fmt.Errorf("snapshot file integrity check failed. %d errors found.\n%s", len(problems), strings.Join(problems, "\n"))
		}
		st.DBSize = tx.Size()
		if meta := tx.Bucket(bucketMeta); meta != nil {
			if v, err := semver.NewVersion(string(meta.Get(metaStorageVersion))); err == nil {
				st.StorageVersion = v.String()
			}
		}
		c := tx.Cursor()
		for name, _ := c.First(); name != nil; name, _ = c.Next() {
			b := tx.Bucket(name)
			if b == nil {
				return fmt.Errorf("nil bucket: %q", name)
			}
			h.Write(name)
			isKeySpace := bytes.Equal(name, bucketKey)
			if err := b.ForEach(func(k, v []byte) error {
				h.Write(k)
				h.Write(v)
				st.BucketEntries++
				if !isKeySpace {
					return nil
				}
				main, tombstone, err := parseRevisionKey(k)
				if err != nil {
					return fmt.Errorf("cannot parse revision key: %q err: %w", k, err)
				}
				st.Revision = main
				var kv mvccpb.KeyValue
				if err := kv.Unmarshal(v); err != nil {
					return fmt.Errorf("cannot unmarshal value, key: %q err: %w", k, err)
				}
				// Revision keys come in ascending order: the last value
				// seen of a key is its newest.
				if tombstone {
					delete(alive, string(kv.Key))
					delete(st.Values, string(kv.Key))
				} else {
					alive[string(kv.Key)] = struct{}{}
					if wanted1(string(kv.Key)) {
						st.Values[string(kv.Key)] = append([]byte(nil), kv.Value...)
					}
				}
				return nil
			}); err != nil {
				return fmt.Errorf("error during bucket key iteration, name: %q err: %w", name, err)
			}
		}
		return nil
	})
	if err != nil {
		return st, err
	}
	st.LiveKeys = len(alive)
	st.Hash = h.Sum32()
	return st, nil
}

// parseRevisionKey decodes a key of the key bucket (etcd mvcc.BytesToRev).
func parseRevisionKey(k []byte) (main int64, tombstone bool, err error) {
	if len(k) != revisionKeyLen && len(k) != tombstoneKeyLen {
		return 0, false, fmt.Errorf("invalid revision length: %d", len(k))
	}
	if k[8] != '_' {
		return 0, false, fmt.Errorf("invalid separator in bucket key: %q", k[8])
	}
	main = int64(binary.BigEndian.Uint64(k[0:8]))
	sub := int64(binary.BigEndian.Uint64(k[9:revisionKeyLen]))
	if main < 0 || sub < 0 {
		return 0, false, fmt.Errorf("negative revision: main=%d sub=%d", main, sub)
	}
	return main, len(k) == tombstoneKeyLen && k[revisionKeyLen] == 't', nil
}

// RestoreMember is the one member of the new cluster a restore creates.
type RestoreMember struct {
	Name         string
	PeerURLs     []string
	ClusterToken string
}

// restoreTestMember is the throw-away one-member cluster of a test restore.
var restoreTestMember = RestoreMember{
	Name:         "restore-test",
	PeerURLs:     []string{"https://127.0.0.1:2380"},
	ClusterToken: "oc-recover-restore-test",
}

// id is the member ID etcd gives a new member of a new cluster: the first 8
// bytes of sha1(sorted peer URLs + cluster token) (membership.NewMember
// without a time).
func (m RestoreMember) id() uint64 {
	urls := append([]string(nil), m.PeerURLs...)
	sort.Strings(urls)
	sum := sha1.Sum([]byte(strings.Join(urls, "") + m.ClusterToken))
	return binary.BigEndian.Uint64(sum[:8])
}

// memberRecord is how etcd stores a member in the members bucket
// (membership.Member marshalled to JSON).
type memberRecord struct {
	ID        uint64   `json:"id"`
	PeerURLs  []string `json:"peerURLs"`
	IsLearner bool     `json:"isLearner,omitempty"`
	Name      string   `json:"name,omitempty"`
}

// RestoreDatabase does to a snapshot's database what `etcdutl snapshot
// restore` does for a new one-member cluster, into dataDir (which must not
// exist or be empty): copy it to member/snap/db without its sha256 trailer,
// which must match (etcdutl's copyAndVerifyDB); drop the old cluster's
// members and removed members (TrimMembershipFromBackend); add the new
// member (AddMember); and set the consistent index and term to those of the
// new member's bootstrap entry, 1 and 1 (UpdateConsistentIndexForce). It
// then opens the result again and checks it reads back as written. The WAL
// and raft snapshot file a restore also writes are made from the new member
// list alone, nothing of the backup, so a test restore leaves them out.
func RestoreDatabase(snapshotPath, dataDir string, member RestoreMember) error {
	if entries, err := os.ReadDir(dataDir); err == nil && len(entries) > 0 {
		return fmt.Errorf("data-dir %q not empty", dataDir)
	}
	snapDir := filepath.Join(dataDir, "member", "snap")
	if err := os.MkdirAll(snapDir, 0o700); err != nil {
		return err
	}
	dbPath := filepath.Join(snapDir, "db")
	if err := copyWithoutTrailer(snapshotPath, dbPath); err != nil {
		return err
	}

	id := member.id()
	record, err := json.Marshal(memberRecord{ID: id, PeerURLs: member.PeerURLs, Name: member.Name})
	if err != nil {
		return err
	}
	idKey := []byte(strconv.FormatUint(id, 16))
	one := binary.BigEndian.AppendUint64(nil, 1)

	db, err := bolt.Open(dbPath, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		meta, members := tx.Bucket(bucketMeta), tx.Bucket(bucketMembers)
		if meta == nil || members == nil {
			return errors.New("the database has no meta or members bucket: not an etcd v3 snapshot")
		}
		for _, b := range []*bolt.Bucket{members, tx.Bucket(bucketMembersRemoved)} {
			if err := deleteAll(b); err != nil {
				return err
			}
		}
		if err := members.Put(idKey, record); err != nil {
			return err
		}
		if err := meta.Put(metaConsistentIndex, one); err != nil {
			return err
		}
		return meta.Put(metaTerm, one)
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}

	// Read the new membership and index back, as the restored member does
	// on start-up. (The whole database passed bbolt's check before.)
	db, err = bolt.Open(dbPath, 0o400, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return fmt.Errorf("reopen the restored database: %w", err)
	}
	defer db.Close()
	return db.View(func(tx *bolt.Tx) error {
		members := tx.Bucket(bucketMembers)
		if n := members.Stats().KeyN; n != 1 || !bytes.Equal(members.Get(idKey), record) {
			return fmt.Errorf("the restored database does not hold the new member alone (%d members)", n)
		}
		if !bytes.Equal(tx.Bucket(bucketMeta).Get(metaConsistentIndex), one) {
			return errors.New("the restored database's consistent index was not written")
		}
		return nil
	})
}

// deleteAll empties a bucket (nil: nothing to do), collecting the keys first:
// bbolt does not allow changing a bucket while iterating over it.
func deleteAll(b *bolt.Bucket) error {
	if b == nil {
		return nil
	}
	var keys [][]byte
	if err := b.ForEach(func(k, _ []byte) error {
		keys = append(keys, append([]byte(nil), k...))
		return nil
	}); err != nil {
		return err
	}
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// copyWithoutTrailer copies the snapshot's database to dst without the
// sha256 trailer, and checks the copy against the trailer.
func copyWithoutTrailer(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	if fi.Size()%512 != trailerSize {
		return fmt.Errorf("snapshot missing hash (size %d)", fi.Size())
	}
	out, err := os.OpenFile(dst, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer out.Close()
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(out, h), in, fi.Size()-trailerSize); err != nil {
		return err
	}
	trailer := make([]byte, trailerSize)
	if _, err := io.ReadFull(in, trailer); err != nil {
		return err
	}
	if got := h.Sum(nil); !bytes.Equal(got, trailer) {
		return fmt.Errorf("expected sha256 %x, got %x", trailer, got)
	}
	return out.Close()
}
