package writebehind

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// errUnsupported is returned when the file (or its file system) does not
// take sync_file_range; the Writer then only writes.
var errUnsupported = errors.New("write-behind not supported for this file")

// startWriteback asks the kernel to start writing [off, off+n) to the disk,
// without waiting for it.
func startWriteback(f *os.File, off, n int64) error {
	return syncRange(f, off, n, unix.SYNC_FILE_RANGE_WRITE)
}

// finishWriteback waits until [off, off+n) is on the disk (writing what is
// still dirty), then drops it from the page cache.
func finishWriteback(f *os.File, off, n int64) error {
	if err := syncRange(f, off, n, unix.SYNC_FILE_RANGE_WAIT_BEFORE|unix.SYNC_FILE_RANGE_WRITE|unix.SYNC_FILE_RANGE_WAIT_AFTER); err != nil {
		return err
	}
	dropCache(f, off, n)
	return nil
}

func syncRange(f *os.File, off, n int64, flags int) error {
	return syncRangeError(f.Name(), unix.SyncFileRange(int(f.Fd()), off, n, flags))
}

// syncRangeError tells a failed write-back (the disk failed or is full: the
// download must fail) from a file the kernel does not write behind.
func syncRangeError(name string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EIO), errors.Is(err, unix.ENOSPC), errors.Is(err, unix.EDQUOT):
		return &os.PathError{Op: "write", Path: name, Err: err}
	default:
		// ESPIPE (a pipe), EINVAL, ENOSYS: not a file the kernel writes
		// behind; the final fsync still makes it durable.
		return errUnsupported
	}
}

// dropCache tells the kernel that [off, off+n) of f will not be read soon.
// It is advice: clean pages go, and an error changes nothing written.
// n == 0 means to the end of the file.
func dropCache(f *os.File, off, n int64) {
	_ = unix.Fadvise(int(f.Fd()), off, n, unix.FADV_DONTNEED)
}
