package debugnode

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// tarOf is the stream tar -cf - sends for one file: a header, the data, the
// end-of-archive blocks and the padding of the last record (zeros).
func tarOf(t *testing.T, name string, data []byte, extra ...func(*tar.Writer)) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(data); err != nil {
		t.Fatal(err)
	}
	for _, f := range extra {
		f(tw)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return append(b.Bytes(), make([]byte, 10240)...)
}

func TestReceiveIsExactAndChecksTheSize(t *testing.T) {
	data := bytes.Repeat([]byte("etcd snapshot "), 200_000) // several chunks
	archive := tarOf(t, "snapshot.db", data)
	enc, _ := zstd.NewWriter(nil)
	z := func(b []byte) []byte { return enc.EncodeAll(b, nil) }
	secondEntry := tarOf(t, "snapshot.db", data, func(tw *tar.Writer) {
		_ = tw.WriteHeader(&tar.Header{Name: "other", Mode: 0o600, Size: 1, Typeflag: tar.TypeReg})
		_, _ = tw.Write([]byte("x"))
	})
	trailing := append(append([]byte(nil), archive...), "extra"...)
	// As a host with zstd sends it: the header, the file and the zeros
	// that pad and end the archive, each its own frame.
	end := 512 + len(data)
	threeFrames := append(append(z(archive[:512]), z(archive[512:end])...), z(archive[end:])...)
	for _, c := range []struct {
		name, stream, want string
		compressed         bool
	}{
		{"plain", string(archive), "", false},
		{"zstd", string(z(archive)), "", true},
		{"zstd in three frames", string(threeFrames), "", true},
		{"plain short", string(archive[:len(data)/2]), "stream ended after", false},
		{"zstd short", string(z(archive)[:len(z(archive))/2]), "of 2800000 bytes", true},
		{"plain, cut in the header", string(archive[:100]), "no file in the stream", false},
		{"plain, second entry", string(secondEntry), "a second entry", false},
		{"zstd, second entry", string(z(secondEntry)), "a second entry", true},
		{"plain, data after the archive", string(trailing), "data after the archive", false},
		{"zstd, data after the archive", string(z(trailing)), "data after the archive", true},
		{"another file", string(tarOf(t, "other.db", data)), "unexpected entry", false},
		{"no stream", "", "no file in the stream", false},
		{"not tar", "gzip 12\nxxxxxxxxxxxxxxxxxxxxxxxxx", "no file in the stream", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			var got bytes.Buffer
			var last int64
			h := sha256.New()
			size, compressed, err := receive(strings.NewReader(c.stream), "snapshot.db", &got, h, func(done, total int64) { last = done }, func(error) {})
			if c.want != "" {
				if err == nil || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("err = %v, want %q", err, c.want)
				}
				return
			}
			if err != nil || compressed != c.compressed || size != int64(len(data)) || last != size || hex.EncodeToString(h.Sum(nil)) != sum(data) || !bytes.Equal(got.Bytes(), data) {
				t.Fatalf("err %v compressed %v size %d progress %d exact %v", err, compressed, size, last, bytes.Equal(got.Bytes(), data))
			}
			// Without a hash (Fetch), the same bytes arrive.
			got.Reset()
			if _, _, err := receive(strings.NewReader(c.stream), "snapshot.db", &got, nil, nil, func(error) {}); err != nil || !bytes.Equal(got.Bytes(), data) {
				t.Fatalf("without a hash: err %v exact %v", err, bytes.Equal(got.Bytes(), data))
			}
		})
	}
}

type failingWriter struct{ n int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.n++; w.n > 2 {
		return 0, errors.New("disk full")
	}
	return len(p), nil
}

// A failing write aborts the stream (here a pipe whose writer would
// otherwise never end) and leaves no goroutine behind.
func TestReceiveStopsOnAWriteError(t *testing.T) {
	var hb bytes.Buffer
	if err := tar.NewWriter(&hb).WriteHeader(&tar.Header{Name: "snapshot.db", Mode: 0o600, Size: 1 << 40, Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	header := hb.Bytes()
	before := runtime.NumGoroutine()
	pr, pw := io.Pipe()
	go func() {
		_, _ = pw.Write(header) // then data, endlessly
		buf := make([]byte, 64<<10)
		for {
			if _, err := pw.Write(buf); err != nil {
				return
			}
		}
	}()
	_, _, err := receive(pr, "snapshot.db", &failingWriter{}, nil, nil, func(err error) { pr.CloseWithError(err) })
	if err == nil || err.Error() != "disk full" {
		t.Fatalf("err = %v, want the write error", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines left behind", n-before)
	}
}

func TestSplitDigest(t *testing.T) {
	d, rest := splitDigest("warning: x\n" + digestPrefix + "abc\n\nstat: gone\n")
	if d != "abc" || rest != "warning: x\nstat: gone" {
		t.Errorf("got %q %q", d, rest)
	}
}
