package debugnode

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// Transfer describes a finished download.
type Transfer struct {
	Path       string
	Size       int64
	SHA256     string // of the bytes received
	HostSHA256 string // computed on the host
	Compressed bool   // zstd on the wire
}

// probeZstd reports whether the host has zstd, to compress on the wire: an
// etcd snapshot shrinks about 8x, and the apiserver's exec stream is the
// bottleneck of a download.
func (s *Session) probeZstd(ctx context.Context) bool {
	if s.engine.NoCompression {
		return false
	}
	if s.hasZstd == nil {
		code, err := s.Host(ctx, "command -v zstd >/dev/null", nil, io.Discard, io.Discard)
		ok := err == nil && code == 0
		s.hasZstd = &ok
	}
	return *s.hasZstd
}

// Download streams one host file (an absolute path) into dst as a tar stream (zstd-compressed
// when the host can), hashing what arrives, while a second exec computes
// sha256 on the host. It fails unless the size in the tar header arrived in
// full and both hashes agree.
func (s *Session) Download(ctx context.Context, hostPath string, dst io.Writer, progress func(done, total int64)) (Transfer, error) {
	if !path.IsAbs(hostPath) {
		return Transfer{}, fmt.Errorf("download %q: not an absolute path on the host", hostPath)
	}
	t := Transfer{Path: hostPath, Compressed: s.probeZstd(ctx)}
	dir, base := path.Split(hostPath)
	if dir == "" {
		dir = "/"
	}
	script := "exec tar -cf - -C " + ShellQuote(dir) + " -- " + ShellQuote(base)
	if t.Compressed {
		script = "set -o pipefail; tar -cf - -C " + ShellQuote(dir) + " -- " + ShellQuote(base) + " | zstd -1 -T0 -q -c"
	}

	hostSum := make(chan error, 1)
	go func() {
		var out, errOut bytes.Buffer
		// openssl uses the CPU's SHA extensions, about four times as fast as
		// coreutils' sha256sum; both print the digest first.
		f := ShellQuote(hostPath)
		script := "if command -v openssl >/dev/null; then openssl dgst -sha256 -r " + f + "; else sha256sum " + f + "; fi"
		code, err := s.Host(ctx, script, nil, &out, &errOut)
		if err == nil && code != 0 {
			err = fmt.Errorf("sha256sum on the host failed: %s", strings.TrimSpace(errOut.String()))
		}
		if err == nil {
			fields := strings.Fields(out.String())
			if len(fields) == 0 {
				err = fmt.Errorf("sha256sum on the host printed nothing")
			} else {
				t.HostSHA256 = fields[0]
			}
		}
		hostSum <- err
	}()

	pr, pw := io.Pipe()
	var stderr bytes.Buffer
	streamDone := make(chan error, 1)
	go func() {
		code, err := s.Host(ctx, script, nil, pw, &stderr)
		if err == nil && code != 0 {
			err = fmt.Errorf("reading %s on node %s failed (exit %d): %s", hostPath, s.node, code, strings.TrimSpace(stderr.String()))
		}
		pw.CloseWithError(err)
		streamDone <- err
	}()

	var src io.Reader = pr
	if t.Compressed {
		dec, err := zstd.NewReader(pr, zstd.WithDecoderConcurrency(2))
		if err != nil {
			pr.CloseWithError(err)
			<-streamDone
			<-hostSum
			return t, err
		}
		defer dec.Close()
		src = dec
	}
	size, sum, err := copyFirstTarEntry(src, dst, base, progress)
	if err != nil {
		pr.CloseWithError(err)
	}
	// Drain what the host still sends (tar's end blocks) so the exec ends.
	_, _ = io.Copy(io.Discard, src)
	if streamErr := <-streamDone; streamErr != nil && err == nil {
		err = streamErr
	}
	if sumErr := <-hostSum; sumErr != nil && err == nil {
		err = sumErr
	}
	t.Size, t.SHA256 = size, sum
	if err != nil {
		return t, fmt.Errorf("download %s from %s: %w", hostPath, s.node, err)
	}
	if t.SHA256 != t.HostSHA256 {
		return t, fmt.Errorf("download %s from %s: sha256 mismatch: host %s, received %s", hostPath, s.node, t.HostSHA256, t.SHA256)
	}
	return t, nil
}

// copyFirstTarEntry copies the regular file named name out of a tar stream,
// hashing it, and checks it arrived whole.
func copyFirstTarEntry(src io.Reader, dst io.Writer, name string, progress func(done, total int64)) (int64, string, error) {
	tr := tar.NewReader(src)
	hdr, err := tr.Next()
	if err != nil {
		return 0, "", fmt.Errorf("no file in the stream: %w", err)
	}
	if hdr.Typeflag != tar.TypeReg || path.Base(hdr.Name) != name {
		return 0, "", fmt.Errorf("unexpected entry %q in the stream", hdr.Name)
	}
	h := sha256.New()
	w := io.MultiWriter(dst, h)
	var done int64
	buf := make([]byte, 1<<20)
	for {
		n, rerr := tr.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return done, "", werr
			}
			done += int64(n)
			if progress != nil {
				progress(done, hdr.Size)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return done, "", fmt.Errorf("stream cut after %d of %d bytes: %w", done, hdr.Size, rerr)
		}
	}
	if done != hdr.Size {
		return done, "", fmt.Errorf("stream ended after %d of %d bytes", done, hdr.Size)
	}
	return done, hex.EncodeToString(h.Sum(nil)), nil
}
