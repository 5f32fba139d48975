package etcd

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// trailerSize is the sha256 that `etcdctl snapshot save` appends to the
// bbolt database; restore refuses a file whose trailer does not match.
const trailerSize = sha256.Size

// SnapshotReport is what verifying a snapshot found.
type SnapshotReport struct {
	// SHA256 of the whole file, as stored in backup.json.
	SHA256 string `json:"sha256"`
	// Size of the whole file in bytes.
	Size int64 `json:"size"`
	// Hash is etcd's crc32 hash of the database content, as `etcdutl snapshot
	// status` prints it.
	Hash uint32 `json:"hash"`
	// Revision is the newest revision in the snapshot.
	Revision int64 `json:"revision"`
	// LiveKeys counts the keys alive at the newest revision (put and not
	// deleted since); etcdutl 3.6's totalKey.
	LiveKeys int `json:"liveKeys"`
	// BucketEntries counts every key/value entry of every bucket of the
	// database (every revision of the key space, tombstones, leases,
	// members, meta); etcdctl 3.4/3.5's totalKey.
	BucketEntries int `json:"bucketEntries"`
	// DBSize is the bbolt database's size.
	DBSize int64 `json:"dbSize"`
	// StorageVersion is etcd's storage version recorded in the snapshot, if any.
	StorageVersion string `json:"storageVersion,omitempty"`
	// RestoreTested is set when a test restore into a throw-away data
	// directory succeeded.
	RestoreTested bool `json:"restoreTested"`
	// Cluster is what the snapshot's own objects say of the cluster.
	Cluster SnapshotCluster `json:"cluster"`
	// Values are the newest values of the extra keys asked for that are
	// alive in the snapshot.
	Values map[string][]byte `json:"-"`
}

// ErrSnapshotCorrupt is wrapped by every verification failure that means
// the file is not a usable snapshot.
var ErrSnapshotCorrupt = errors.New("snapshot is not usable")

// VerifySnapshot checks a snapshot file as a restore would need it: the
// sha256 trailer matches the database, bbolt's own consistency check passes
// and every revision in the key space decodes (status), and (with
// testRestore) the database is restored into a throw-away data dir under
// scratchDir and read back. It returns what it learned along the way,
// including which cluster and release the snapshot is of, and the values of
// the extra keys that are alive in it.
func VerifySnapshot(path string, testRestore bool, scratchDir string, extraKeys ...string) (SnapshotReport, error) {
	var r SnapshotReport
	sum, size, err := checkTrailer(path)
	r.SHA256, r.Size = sum, size
	if err != nil {
		return r, err
	}
	status, err := snapshotStatus(path, append(append([]string(nil), identityKeys...), extraKeys...)...)
	if err != nil {
		return r, fmt.Errorf("%w: %s: %v", ErrSnapshotCorrupt, filepath.Base(path), err)
	}
	if r.Cluster, err = snapshotCluster(status.Values); err != nil {
		return r, fmt.Errorf("%w: %s: %v", ErrSnapshotCorrupt, filepath.Base(path), err)
	}
	r.Values = map[string][]byte{}
	for _, k := range extraKeys {
		if v, ok := status.Values[k]; ok {
			r.Values[k] = v
		}
	}
	r.Hash, r.Revision, r.LiveKeys, r.BucketEntries, r.DBSize, r.StorageVersion = status.Hash, status.Revision, status.LiveKeys, status.BucketEntries, status.DBSize, status.StorageVersion
	if !testRestore {
		return r, nil
	}
	dir, err := os.MkdirTemp(scratchDir, ".restore-test-")
	if err != nil {
		return r, fmt.Errorf("test restore: %w", err)
	}
	defer os.RemoveAll(dir)
	if err := RestoreDatabase(path, filepath.Join(dir, "data"), restoreTestMember); err != nil {
		return r, fmt.Errorf("%w: test restore of %s failed: %v", ErrSnapshotCorrupt, filepath.Base(path), err)
	}
	r.RestoreTested = true
	return r, nil
}

// checkTrailer hashes the file in one pass: the whole file (for backup.json)
// and the database part, which must equal the 32-byte trailer.
func checkTrailer(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", 0, err
	}
	size := fi.Size()
	if size < 2*4096+trailerSize {
		return "", size, fmt.Errorf("%w: %s is %d bytes, too small for an etcd snapshot (truncated?)", ErrSnapshotCorrupt, filepath.Base(path), size)
	}
	whole, db := sha256.New(), sha256.New()
	if _, err := io.CopyN(io.MultiWriter(whole, db), f, size-trailerSize); err != nil {
		return "", size, fmt.Errorf("read %s: %w", path, err)
	}
	trailer := make([]byte, trailerSize)
	if _, err := io.ReadFull(f, trailer); err != nil {
		return "", size, fmt.Errorf("read %s: %w", path, err)
	}
	whole.Write(trailer)
	sum := hex.EncodeToString(whole.Sum(nil))
	if !bytes.Equal(db.Sum(nil), trailer) {
		return sum, size, fmt.Errorf("%w: %s: the sha256 trailer does not match the data (truncated, altered, or not written by etcdctl snapshot save)", ErrSnapshotCorrupt, filepath.Base(path))
	}
	return sum, size, nil
}
