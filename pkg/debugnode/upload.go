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
	"time"

	"github.com/klauspost/compress/zstd"
)

// An upload is a download the other way round: a tar stream of one file,
// as kubectl cp sends it, zstd-compressed on the wire when the host can
// decompress it, hashed on both ends. It lands in <path>.part, is hashed
// there by the host, and is renamed to its name only once both digests
// agree, so that a cut or altered upload leaves no file that looks
// complete. A file of that name already on the host is never replaced.
//
// Measured on the box (BenchmarkRestoreUpload, 1 GiB): about as fast as
// kubectl cp whether compressed or not. The wire is not what bounds it
// there: the client, the apiserver, the kubelet and the host share two
// cores, encoding and hashing take one of them for about 250 MiB/s, and
// the host's write and fsync about as long (hashing on a goroutine of its
// own was tried and gained nothing). Over a 50 MiB/s link, where kubectl
// cp is bound by the wire, it is about 3x as fast
// (BenchmarkTransferOverWAN).

// uploadScript is the host's side: refuse an existing file, receive the
// stream into the .part file (a .part left by an upload that was cut is
// ours to replace), hash it, and print the digest on stderr.
func uploadScript(hostPath string, compressed bool) string {
	base := path.Base(hostPath)
	f, part := ShellQuote(hostPath), ShellQuote(hostPath+".part")
	decode := "cat"
	if compressed {
		decode = "zstd -d -q -c"
	}
	hash := "sha256sum"
	// openssl uses the CPU's SHA extensions, about four times as fast as
	// coreutils' sha256sum; both print the digest first.
	return "set -o pipefail\numask 077\n" +
		"if [ -e " + f + " ]; then echo " + ShellQuote(hostPath+" already exists on the host; nothing was replaced") + " >&2; exit 17; fi\n" +
		"rm -f -- " + part + "\n" +
		"tmp=$(mktemp -d) || exit\n" +
		"trap 'rm -rf -- \"$tmp\"' EXIT\n" +
		`mkfifo "$tmp/data" || exit` + "\n" +
		"hash=" + hash + "; command -v openssl >/dev/null && hash='openssl dgst -sha256 -r'\n" +
		`$hash < "$tmp/data" > "$tmp/sum" & hasher=$!` + "\n" +
		// tar writes the one member to its standard output, which is both
		// written to the .part and hashed as it passes (through a fifo):
		// one pass over the data on the host.
		decode + " | tar -xOf - -- " + ShellQuote(base+".part") + ` | tee "$tmp/data" > ` + part + " || { wait $hasher; exit 1; }\n" +
		"wait $hasher || exit\n" +
		`sumf="$tmp/sum"` + "\n" +
		`read -r sum _ < "$sumf" || exit` + "\n" +
		`printf '` + digestPrefix + `%s\n' "$sum" >&2` + "\n" +
		""
}

// commitScript renames the verified .part to its name, on the disk before
// it returns.
func commitScript(hostPath string) string {
	f, part := ShellQuote(hostPath), ShellQuote(hostPath+".part")
	return "set -e\nif [ -e " + f + " ]; then echo " + ShellQuote(hostPath+" already exists on the host") + " >&2; exit 17; fi\n" +
		"mv -- " + part + " " + f + "\nsync -- " + f + " " + ShellQuote(path.Dir(hostPath)) + "\n"
}

// Upload streams size bytes of src into the host file hostPath (an
// absolute path whose directory exists), in one exec that also hashes the
// file on the host, and renames it into place once the digests agree. It
// fails, leaving no hostPath, when the file exists already, src does not
// hold size bytes, the stream is cut, or the digests differ.
func (s *Session) Upload(ctx context.Context, src io.Reader, size int64, hostPath string, progress func(done, total int64)) (Transfer, error) {
	t := Transfer{Path: hostPath, Size: size}
	if !path.IsAbs(hostPath) || strings.HasSuffix(hostPath, "/") {
		return t, fmt.Errorf("upload to %q: not an absolute file path on the host", hostPath)
	}
	fail := func(err error) (Transfer, error) {
		// The .part is this upload's own; nothing else is touched.
		_, _ = s.Host(context.WithoutCancel(ctx), "rm -f -- "+ShellQuote(hostPath+".part"), nil, io.Discard, io.Discard)
		return t, fmt.Errorf("upload %s to %s: %w", hostPath, s.node, err)
	}
	t.Compressed = !s.engine.NoCompression && s.hostHas(ctx, "zstd")

	h := sha256.New()
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(writeStream(pw, src, size, path.Base(hostPath)+".part", t.Compressed, h, progress))
	}()
	var stderr bytes.Buffer
	code, err := s.Exec(ctx, []string{"chroot", hostMount, "/bin/bash", "-c", uploadScript(hostPath, t.Compressed)}, pr, io.Discard, &stderr)
	pr.CloseWithError(io.ErrClosedPipe) // ends the writer if the exec ended first
	digest, msg := splitDigest(stderr.String())
	switch {
	case err != nil:
		return fail(err)
	case code == 17:
		return t, fmt.Errorf("upload %s to %s: %s", hostPath, s.node, msg)
	case code != 0:
		return fail(fmt.Errorf("writing on the host failed (exit %d): %s", code, msg))
	case digest == "":
		return fail(fmt.Errorf("the host printed no sha256: %s", msg))
	}
	t.SHA256, t.HostSHA256 = hex.EncodeToString(h.Sum(nil)), digest
	if t.SHA256 != t.HostSHA256 {
		return fail(fmt.Errorf("sha256 mismatch: sent %s, the host has %s", t.SHA256, t.HostSHA256))
	}
	var commitErr bytes.Buffer
	if code, err := s.Host(ctx, commitScript(hostPath), nil, io.Discard, &commitErr); err != nil || code != 0 {
		return fail(fmt.Errorf("renaming the verified upload into place failed (exit %d, %v): %s", code, err, strings.TrimSpace(commitErr.String())))
	}
	return t, nil
}

// writeStream writes the tar stream of one file named name, of size bytes
// read from src, into w, zstd-encoded when compressed, hashing the file's
// bytes into h. It fails when src holds fewer bytes.
func writeStream(w io.Writer, src io.Reader, size int64, name string, compressed bool, h io.Writer, progress func(done, total int64)) error {
	out := w
	var enc *zstd.Encoder
	if compressed {
		var err error
		// The fastest level on one goroutine: the CPU is shared with the
		// apiserver and the host, and snapshots still shrink several times.
		if enc, err = zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(false)); err != nil {
			return err
		}
		out = enc
	}
	tw := tar.NewWriter(out)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: size, Typeflag: tar.TypeReg, ModTime: time.Now(), Format: tar.FormatGNU}); err != nil {
		return err
	}
	counted := &progressWriter{total: size, progress: progress}
	n, err := io.Copy(io.MultiWriter(tw, h, counted), io.LimitReader(src, size))
	if err != nil {
		return err
	}
	if n != size {
		return fmt.Errorf("the source ended after %d of %d bytes", n, size)
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if enc != nil {
		return enc.Close()
	}
	return nil
}

// progressWriter reports the bytes written through it.
type progressWriter struct {
	done, total int64
	progress    func(done, total int64)
}

func (p *progressWriter) Write(b []byte) (int, error) {
	p.done += int64(len(b))
	if p.progress != nil {
		p.progress(p.done, p.total)
	}
	return len(b), nil
}

// hostHas says whether the host has a command.
func (s *Session) hostHas(ctx context.Context, command string) bool {
	code, err := s.Host(ctx, "command -v "+ShellQuote(command)+" >/dev/null", nil, io.Discard, io.Discard)
	return err == nil && code == 0
}
