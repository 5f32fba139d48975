package writebehind

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// pattern returns n bytes that differ from one window to the next, so that
// a window written to the wrong place shows.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/4093)
	}
	return b
}

// writeInPieces writes data in pieces of uneven sizes, as a download does.
func writeInPieces(t *testing.T, w io.Writer, data []byte) {
	t.Helper()
	for off, i := 0, 0; off < len(data); i++ {
		n := min(len(data)-off, 300_000+i*13_331)
		if _, err := w.Write(data[off : off+n]); err != nil {
			t.Fatal(err)
		}
		off += n
	}
}

// residentFraction reads, with mincore, how much of f's [off, off+n) is in
// the page cache.
func residentFraction(t *testing.T, f *os.File, off, n int64) float64 {
	t.Helper()
	m, err := unix.Mmap(int(f.Fd()), off, int(n), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	vec := make([]byte, (int(n)+os.Getpagesize()-1)/os.Getpagesize())
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatal(errno)
	}
	in := 0
	for _, v := range vec {
		in += int(v & 1)
	}
	return float64(in) / float64(len(vec))
}

// skipWithoutWriteback skips on file systems that keep files in memory
// (tmpfs): there is no disk to write behind to, nor a cache to drop.
func skipWithoutWriteback(t *testing.T, dir string) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	if st.Type == unix.TMPFS_MAGIC || st.Type == unix.RAMFS_MAGIC {
		t.Skipf("%s is in memory: nothing is written behind", dir)
	}
}

func TestWriterWritesTheFileExactly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "snapshot.db.part")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	data := pattern(3*window + window/3 + 17)
	w := New(f)
	writeInPieces(t, w, data)
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("the file differs from what was written (%d bytes written, %d read)", len(data), len(got))
	}
}

func TestWriterDropsWrittenWindowsFromThePageCache(t *testing.T) {
	dir := t.TempDir()
	skipWithoutWriteback(t, dir)
	f, err := os.Create(filepath.Join(dir, "snapshot.db.part"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := New(f)
	// Three windows complete: the first has been waited for and dropped,
	// the second is on its way to the disk, the third still being written.
	writeInPieces(t, w, pattern(3*window+4096))
	if w.off {
		t.Fatal("write-behind switched itself off on a regular file")
	}
	if r := residentFraction(t, f, 0, window); r > 0.1 {
		t.Errorf("%.0f%% of the first window is still in the page cache while the fourth is written; want it dropped", r*100)
	}
	if r := residentFraction(t, f, 2*window, window); r < 0.5 {
		t.Errorf("only %.0f%% of the window being written is in the page cache; the test cannot tell dropped from never cached", r*100)
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	if r := residentFraction(t, f, 0, w.written); r > 0.1 {
		t.Errorf("%.0f%% of the file is in the page cache after Sync; want it read back from the disk", r*100)
	}
}

func TestWriterOnAPipeOnlyWrites(t *testing.T) {
	r, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	data := pattern(2*window + 1)
	got := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(r)
		got <- b
	}()
	w := New(pw)
	writeInPieces(t, w, data)
	pw.Close()
	if !bytes.Equal(<-got, data) {
		t.Fatal("what came out of the pipe differs from what was written")
	}
	if !w.off {
		t.Error("write-behind is still on for a pipe, which sync_file_range refuses")
	}
}

// A write-back that failed on the disk fails the download, naming the file;
// a file the kernel does not write behind only turns write-behind off.
func TestSyncRangeErrorTellsAFailedDiskFromAnUnsupportedFile(t *testing.T) {
	for _, errno := range []unix.Errno{unix.EIO, unix.ENOSPC, unix.EDQUOT} {
		err := syncRangeError("/backup/snapshot.db.part", errno)
		if !errors.Is(err, errno) || errors.Is(err, errUnsupported) || !strings.Contains(err.Error(), "snapshot.db.part") {
			t.Errorf("%v: got %v, want a write error naming the file", errno, err)
		}
	}
	for _, errno := range []unix.Errno{unix.ESPIPE, unix.EINVAL, unix.ENOSYS} {
		if err := syncRangeError("/backup/snapshot.db.part", errno); !errors.Is(err, errUnsupported) {
			t.Errorf("%v: got %v, want write-behind turned off", errno, err)
		}
	}
	if err := syncRangeError("/backup/snapshot.db.part", nil); err != nil {
		t.Errorf("no error: got %v", err)
	}
}
