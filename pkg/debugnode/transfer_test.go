package debugnode

import (
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

func TestReceiveIsExactAndChecksTheSize(t *testing.T) {
	data := bytes.Repeat([]byte("etcd snapshot "), 200_000) // several chunks
	enc, _ := zstd.NewWriter(nil)
	compressedData := enc.EncodeAll(data, nil)
	for _, c := range []struct {
		name, stream, want string
		compressed         bool
	}{
		{"plain", "plain 2800000\n" + string(data), "", false},
		{"zstd", "zstd 2800000\n" + string(compressedData), "", true},
		{"plain short", "plain 2800001\n" + string(data), "stream ended after 2800000 of 2800001 bytes", false},
		{"plain long", "plain 2799999\n" + string(data), "more than the announced size", false},
		{"zstd short", "zstd 2800000\n" + string(compressedData[:len(compressedData)/2]), "of 2800000 bytes", true},
		{"zstd long", "zstd 2799999\n" + string(compressedData), "more than the announced size", true},
		{"no header", "", "no header", false},
		{"bad header", "gzip 12\n", "unexpected header", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			var got bytes.Buffer
			var last int64
			size, s, compressed, err := receive(strings.NewReader(c.stream), &got, func(done, total int64) { last = done }, func(error) {})
			if c.want != "" {
				if err == nil || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("err = %v, want %q", err, c.want)
				}
				return
			}
			if err != nil || compressed != c.compressed || size != int64(len(data)) || last != size || s != sum(data) || !bytes.Equal(got.Bytes(), data) {
				t.Fatalf("err %v compressed %v size %d progress %d exact %v", err, compressed, size, last, bytes.Equal(got.Bytes(), data))
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
	before := runtime.NumGoroutine()
	pr, pw := io.Pipe()
	go func() {
		_, _ = pw.Write([]byte("plain 1000000000\n"))
		buf := make([]byte, 64<<10)
		for {
			if _, err := pw.Write(buf); err != nil {
				return
			}
		}
	}()
	_, _, _, err := receive(pr, &failingWriter{}, nil, func(err error) { pr.CloseWithError(err) })
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
