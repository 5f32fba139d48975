// Package writebehind writes a large file to disk while it arrives, rather
// than leaving all of it in the page cache for one long fsync at the end.
//
// A backup of a gigabyte or more would otherwise sit in memory as dirty
// pages until its fsync, which then stalls for as long as the disk needs
// for all of it, and fills the page cache of the admin's machine with it.
// Here each window of the file is handed to the disk as soon as it is
// written, and once on disk, dropped from the page cache: the final Sync
// has little left to do, the memory the file uses stays bounded (a few
// windows), and a verification that reads the file afterwards reads what
// the disk holds, not what the memory still has.
//
// On systems without sync_file_range (all but Linux), Writer writes through
// to the file and Sync is a plain fsync.
package writebehind

import (
	"errors"
	"os"
)

// window is how much is written before it is handed to the disk: large
// enough that the disk sees long sequential writes, small enough that the
// memory held stays small.
const window = 32 << 20

// Writer writes to a file and hands each window to the disk behind the
// writes. It is not safe for concurrent use.
type Writer struct {
	f *os.File
	// written is where the next write lands; submitted is the end of the
	// last window handed to the disk; inFlight is that window's start.
	written, submitted, inFlight int64
	// off is set once the system refused write-behind for this file
	// (e.g. it is not a regular file): from then on it only writes.
	off bool
}

// New returns a Writer that writes to f from its current offset, which must
// be 0 (a new file, as a download's *.part is).
func New(f *os.File) *Writer { return &Writer{f: f} }

// Write writes p to the file; once a window is complete it starts that
// window's writeback and waits for the previous one's, dropping it from the
// page cache. A writeback error (the disk failed, or is full) is returned
// here, not only at Sync.
func (w *Writer) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.written += int64(n)
	if err != nil || w.off || w.written-w.submitted < window {
		return n, err
	}
	if err := w.behind(); err != nil {
		return n, err
	}
	return n, nil
}

// behind starts writeback of [submitted, written) and finishes the window
// before it.
func (w *Writer) behind() error {
	err := startWriteback(w.f, w.submitted, w.written-w.submitted)
	if err == nil && w.submitted > w.inFlight {
		err = finishWriteback(w.f, w.inFlight, w.submitted-w.inFlight)
	}
	if errors.Is(err, errUnsupported) {
		w.off = true
		return nil
	}
	if err != nil {
		return err
	}
	w.inFlight, w.submitted = w.submitted, w.written
	return nil
}

// Sync makes the whole file durable (fsync) and drops it from the page
// cache, so that reading it next reads it from the disk.
func (w *Writer) Sync() error {
	if err := w.f.Sync(); err != nil {
		return err
	}
	dropCache(w.f, 0, w.written)
	return nil
}
