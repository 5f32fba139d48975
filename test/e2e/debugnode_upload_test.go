package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// uploadPayload is data shaped like a snapshot: runs that compress, and
// random bytes that do not.
func uploadPayload(t *testing.T, size int) []byte {
	t.Helper()
	data := make([]byte, size)
	if _, err := rand.Read(data[:size/2]); err != nil {
		t.Fatal(err)
	}
	copy(data[size/2:], bytes.Repeat([]byte(`{"kind":"Pod","apiVersion":"v1","metadata":{"name":"app"}}`), size))
	return data
}

// An upload puts exactly the bytes on the host, compressed on the wire or
// not, with both digests agreeing, under the name asked for and nothing
// beside it; it never replaces a file, and one that cannot finish (a short
// source, an interruption) leaves neither the file nor its .part.
func TestDebugNodeUploadIsExactAndNeverReplaces(t *testing.T) {
	ctx := context.Background()
	e := newEngine(t, shared)
	s, err := e.Start(ctx, "master-2")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	root := shared.Node("master-2").Sandbox.Root
	hostDir := "/var/lib/oc-recover/upload-test-" + strings.ReplaceAll(t.Name(), "/", "-")
	if code, err := s.Host(ctx, "install -d -m 0700 "+hostDir, nil, io.Discard, io.Discard); err != nil || code != 0 {
		t.Fatalf("mkdir: %d %v", code, err)
	}
	t.Cleanup(func() { os.RemoveAll(filepath.Join(root, hostDir)) })
	data := uploadPayload(t, 6<<20)
	sum := sha256.Sum256(data)
	want := hex.EncodeToString(sum[:])

	for _, plain := range []bool{false, true} {
		name := "compressed.db"
		e.NoCompression = plain
		if plain {
			name = "plain.db"
		}
		var last int64
		tr, err := s.Upload(ctx, bytes.NewReader(data), int64(len(data)), hostDir+"/"+name, func(done, total int64) { last = done })
		if err != nil {
			t.Fatalf("upload %s: %v", name, err)
		}
		if tr.SHA256 != want || tr.HostSHA256 != want || tr.Compressed == plain || last != int64(len(data)) {
			t.Errorf("upload %s: %+v (progress %d), want sha256 %s on both ends, compressed %v", name, tr, last, want, !plain)
		}
		got, err := os.ReadFile(filepath.Join(root, hostDir, name))
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s on the host: %d bytes, %v; want the %d bytes sent", name, len(got), err, len(data))
		}
		if fi, err := os.Stat(filepath.Join(root, hostDir, name)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode: %v %v, want 0600", name, fi.Mode(), err)
		}
	}
	e.NoCompression = false

	// A file of that name stays as it is.
	if _, err := s.Upload(ctx, bytes.NewReader([]byte("other")), 5, hostDir+"/plain.db", nil); err == nil || !strings.Contains(err.Error(), "already exists on the host; nothing was replaced") {
		t.Errorf("upload over an existing file: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(root, hostDir, "plain.db")); !bytes.Equal(got, data) {
		t.Error("an upload replaced an existing file")
	}
	// A source shorter than it said.
	if _, err := s.Upload(ctx, bytes.NewReader(data[:1000]), int64(len(data)), hostDir+"/short.db", nil); err == nil {
		t.Error("an upload of a short source succeeded")
	}
	// Interrupted mid-stream.
	cctx, cancel := context.WithCancel(ctx)
	slow := &slowReader{r: bytes.NewReader(data), after: 1 << 20, cancel: cancel}
	if _, err := s.Upload(cctx, slow, int64(len(data)), hostDir+"/cut.db", nil); err == nil {
		t.Error("an interrupted upload succeeded")
	}
	entries, _ := os.ReadDir(filepath.Join(root, hostDir))
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "compressed.db plain.db" {
		t.Errorf("the host holds %v, want the two uploads alone (no .part, nothing of the failed ones)", names)
	}
}

// slowReader cancels the upload once after bytes have been read, then
// goes on slowly.
type slowReader struct {
	r      io.Reader
	read   int
	after  int
	cancel func()
}

func (s *slowReader) Read(p []byte) (int, error) {
	if s.read >= s.after {
		s.cancel()
		time.Sleep(10 * time.Millisecond)
	}
	n, err := s.r.Read(p[:min(len(p), 64<<10)])
	s.read += n
	return n, err
}
