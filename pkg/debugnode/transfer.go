package debugnode

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"path"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// Transfer describes a finished download.
type Transfer struct {
	Path       string
	Size       int64
	SHA256     string // of the bytes received (empty after Fetch)
	HostSHA256 string // computed on the host
	Compressed bool   // zstd on the wire
}

// digestPrefix marks the line on the download's stderr that carries the
// host's sha256; everything else there is an error message.
const digestPrefix = "oc-recover-sha256 "

// zstdArgs compress on the host. --fast=3 costs about half the CPU of -1
// and decodes faster; an etcd snapshot still shrinks ~4.6x (9x with -1),
// and on the way from a debug pod it is CPU, shared by the host, the
// apiserver and the client, that bounds a download, not the bytes. One
// worker (-T1) costs less CPU than -T0's pool for the same output.
// --no-check: the sha256 on both ends already covers the content.
const zstdArgs = "--fast=3 -T1 --no-check -q -c"

// zstdMagic starts every zstd frame; a plain tar stream starts with a name.
var zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}

// downloadScript is the one host command of a download: a tar stream of the
// file, as kubectl cp sends it, through zstd when the host has it and
// compress is set; meanwhile it hashes the file, and prints the digest on
// stderr once the stream ended well. tar and the hash read the file by
// name: should it change in between, the digests disagree and the download
// fails.
//
// Compressed, zstd reads the file itself rather than from tar through a
// pipe, which saves about a third of the host's CPU for the stream: tar
// writes only the file's header (its first 512-byte block, cut off with
// head), and three zstd frames carry that header, the file, and the zeros
// that pad it to a block and end the archive. What arrives decoded is, byte
// for byte, `tar -cf - -b 1` of the file. That needs the header in one
// block: a name of 100 bytes or more takes GNU tar an extra one, and such a
// file is streamed by tar into zstd. Uncompressed, tar writes 1 MiB records
// (-b 2048) rather than its default 10 KiB, for fewer system calls on both
// ends of the pipe.
func downloadScript(hostPath string, compress bool) string {
	dir, base := path.Split(hostPath)
	useZstd := "command -v zstd >/dev/null"
	if !compress {
		useZstd = "false"
	}
	tarArgs := "-C " + ShellQuote(dir) + " -- " + ShellQuote(base)
	headerFirst := "false"
	if len(base) < 100 {
		headerFirst = `size=$(stat -c %s -- "$f")`
	}
	return "set -o pipefail\n" +
		"f=" + ShellQuote(hostPath) + "\n" +
		"if " + useZstd + " && " + headerFirst + "; then\n" +
		"  {\n" +
		// tar ends on SIGPIPE once head has its block: not a failure.
		"    ( set +o pipefail; tar --format=gnu -cf - -b 1 " + tarArgs + " 2>/dev/null | head -c 512 ) | zstd " + zstdArgs + " &&\n" +
		"    zstd " + zstdArgs + ` -- "$f" &&` + "\n" +
		"    head -c $(( (512 - size % 512) % 512 + 1024 )) /dev/zero | zstd " + zstdArgs + "\n" +
		"  } &\n" +
		"elif " + useZstd + "; then\n" +
		"  tar -cf - -b 2048 " + tarArgs + " | zstd " + zstdArgs + " &\n" +
		"else\n" +
		"  tar -cf - -b 2048 " + tarArgs + " &\n" +
		"fi\n" +
		"stream=$!\n" +
		// openssl uses the CPU's SHA extensions, about four times as fast as
		// coreutils' sha256sum; both print the digest first.
		`if command -v openssl >/dev/null; then sum=$(openssl dgst -sha256 -r -- "$f"); else sum=$(sha256sum -- "$f"); fi || { wait $stream; exit 1; }` + "\n" +
		"wait $stream || exit\n" +
		`printf '` + digestPrefix + `%s\n' "${sum%% *}" >&2` + "\n"
}

// Download streams one host file (an absolute path) into dst as a tar
// stream, zstd-compressed on the wire when the host has zstd, in a single
// exec that also computes the file's sha256 on the host. The client decodes,
// hashes and writes on separate goroutines. It fails unless the archive
// holds that one file, all of it arrived, and both hashes agree.
func (s *Session) Download(ctx context.Context, hostPath string, dst io.Writer, progress func(done, total int64)) (Transfer, error) {
	t, err := s.transfer(ctx, hostPath, dst, sha256.New(), progress)
	if err == nil && t.SHA256 != t.HostSHA256 {
		err = fmt.Errorf("download %s from %s: sha256 mismatch: host %s, received %s", hostPath, s.node, t.HostSHA256, t.SHA256)
	}
	return t, err
}

// Fetch is Download without hashing on the client: Transfer.SHA256 is
// empty, and the caller must hash what it stored and compare it with
// HostSHA256. It is for callers that read the file back anyway (backup
// verifies it from disk), so that the bytes are hashed once, not twice.
func (s *Session) Fetch(ctx context.Context, hostPath string, dst io.Writer, progress func(done, total int64)) (Transfer, error) {
	return s.transfer(ctx, hostPath, dst, nil, progress)
}

// transfer runs the download's one exec and receives the file into dst,
// hashing it into h unless h is nil.
func (s *Session) transfer(ctx context.Context, hostPath string, dst io.Writer, h hash.Hash, progress func(done, total int64)) (Transfer, error) {
	if !path.IsAbs(hostPath) {
		return Transfer{}, fmt.Errorf("download %q: not an absolute path on the host", hostPath)
	}
	t := Transfer{Path: hostPath}

	pr, pw := io.Pipe()
	var stderr bytes.Buffer
	streamDone := make(chan error, 1)
	go func() {
		code, err := s.Host(ctx, downloadScript(hostPath, !s.engine.NoCompression), nil, pw, &stderr)
		if err == nil && code != 0 {
			_, msg := splitDigest(stderr.String())
			err = fmt.Errorf("reading %s on node %s failed (exit %d): %s", hostPath, s.node, code, msg)
		}
		pw.CloseWithError(err)
		streamDone <- err
	}()

	var err error
	t.Size, t.Compressed, err = receive(pr, path.Base(hostPath), dst, h, progress, func(err error) { pr.CloseWithError(err) })
	if err != nil {
		// Ends the exec: its output has nowhere to go.
		pr.CloseWithError(err)
	}
	if streamErr := <-streamDone; streamErr != nil && err == nil {
		err = streamErr
	}
	if err == nil {
		var msg string
		t.HostSHA256, msg = splitDigest(stderr.String())
		if t.HostSHA256 == "" {
			err = fmt.Errorf("the host printed no sha256: %s", msg)
		}
	}
	if err != nil {
		return t, fmt.Errorf("download %s from %s: %w", hostPath, s.node, err)
	}
	if h != nil {
		t.SHA256 = hex.EncodeToString(h.Sum(nil))
	}
	return t, nil
}

// splitDigest separates the host's digest line from the rest of stderr.
func splitDigest(stderr string) (digest, rest string) {
	var other []string
	for _, line := range strings.Split(stderr, "\n") {
		if d, ok := strings.CutPrefix(line, digestPrefix); ok {
			digest = strings.TrimSpace(d)
		} else if strings.TrimSpace(line) != "" {
			other = append(other, line)
		}
	}
	return digest, strings.TrimSpace(strings.Join(other, "\n"))
}

// receive reads the tar stream (zstd-compressed or not, as its first bytes
// tell), which must hold exactly one regular file named name, and copies
// the file into dst, and into h unless h is nil.
func receive(stream io.Reader, name string, dst io.Writer, h hash.Hash, progress func(done, total int64), abort func(error)) (size int64, compressed bool, err error) {
	br := bufio.NewReaderSize(stream, 256<<10)
	magic, err := br.Peek(len(zstdMagic))
	if err != nil {
		return 0, false, fmt.Errorf("no file in the stream: %w", err)
	}
	var src io.Reader = br
	if bytes.Equal(magic, zstdMagic) {
		compressed = true
		// One goroutine: the stream decoder's own concurrency costs more
		// CPU than it saves when the host shares the cores.
		dec, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return 0, compressed, err
		}
		defer dec.Close()
		src = dec
	}
	tr := tar.NewReader(src)
	hdr, err := tr.Next()
	if err != nil {
		return 0, compressed, fmt.Errorf("no file in the stream: %w", err)
	}
	if hdr.Typeflag != tar.TypeReg || path.Base(hdr.Name) != name {
		return 0, compressed, fmt.Errorf("unexpected entry %q in the stream", hdr.Name)
	}
	done, err := copyPipelined(tr, dst, h, hdr.Size, progress, abort)
	if err != nil {
		return done, compressed, err
	}
	if next, err := tr.Next(); err == nil {
		return done, compressed, fmt.Errorf("%w: a second entry %q", errTooLong, next.Name)
	} else if err != io.EOF {
		return done, compressed, fmt.Errorf("after the file: %w", err)
	}
	// What follows the archive's end is tar's padding to a full record.
	return done, compressed, onlyZeros(src)
}

// onlyZeros reads r to its end and fails on anything but zero bytes.
func onlyZeros(r io.Reader) error {
	buf := make([]byte, 64<<10)
	for {
		n, err := r.Read(buf)
		for _, c := range buf[:n] {
			if c != 0 {
				return fmt.Errorf("%w: data after the archive", errTooLong)
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("after the archive: %w", err)
		}
	}
}

const (
	chunkSize  = 512 << 10
	chunkCount = 8
)

// errTooLong is returned when the stream holds more than the one file.
var errTooLong = errors.New("the stream holds more than the file")

// copyPipelined copies exactly size bytes from src into dst and h (unless
// nil): reading (and decoding), hashing and writing each on its own goroutine, handing
// chunks along through bounded channels. It fails if src ends early or
// holds more. All goroutines have ended when it returns; a failing write
// calls abort, which must make a blocked read of src return.
func copyPipelined(src io.Reader, dst io.Writer, h hash.Hash, size int64, progress func(done, total int64), abort func(error)) (int64, error) {
	free := make(chan []byte, chunkCount)
	for range chunkCount {
		free <- make([]byte, chunkSize)
	}
	toHash := make(chan []byte, chunkCount)
	toWrite := make(chan []byte, chunkCount)
	quit := make(chan struct{})
	var readErr error // set by the reader before it closes toHash

	go func() {
		defer close(toHash)
		var got int64
		for got < size {
			var buf []byte
			select {
			case buf = <-free:
			case <-quit:
				return
			}
			n, err := io.ReadFull(src, buf[:min(int64(len(buf)), size-got)])
			got += int64(n)
			if n > 0 {
				toHash <- buf[:n]
			}
			if err != nil {
				if err == io.EOF || err == io.ErrUnexpectedEOF {
					readErr = fmt.Errorf("stream ended after %d of %d bytes", got, size)
				} else {
					readErr = fmt.Errorf("stream cut after %d of %d bytes: %w", got, size, err)
				}
				return
			}
		}
		// The whole size arrived: the stream must end here.
		var one [1]byte
		if n, err := io.ReadFull(src, one[:]); n > 0 {
			readErr = errTooLong
		} else if err != io.EOF {
			readErr = fmt.Errorf("stream cut after all %d bytes: %w", size, err)
		}
	}()
	go func() {
		defer close(toWrite)
		for buf := range toHash {
			if h != nil {
				h.Write(buf)
			}
			toWrite <- buf
		}
	}()

	var done int64
	var writeErr error
	for buf := range toWrite {
		if writeErr == nil {
			if _, err := dst.Write(buf); err != nil {
				writeErr = err
				close(quit)
				abort(err)
			} else {
				done += int64(len(buf))
				if progress != nil {
					progress(done, size)
				}
			}
		}
		free <- buf[:cap(buf)]
	}
	if writeErr != nil {
		return done, writeErr
	}
	return done, readErr
}
