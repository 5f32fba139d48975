package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/oc-recover/oc-recover/pkg/backup"
	"github.com/oc-recover/oc-recover/pkg/debugnode"
)

// BenchmarkRestoreUpload times what a restore's first phase moves: the
// backup's snapshot from the administrator's disk to the recovery host,
// as debugnode's Upload does it (tar over SPDY exec, zstd on the wire,
// sha256 on both ends, renamed into place once they agree) against kubectl
// cp into the same debug pod, in the same run.
func BenchmarkRestoreUpload(b *testing.B) {
	ctx := context.Background()
	sb := startSnapshotBench(b)
	local := filepath.Join(b.TempDir(), "snapshot.db")
	if _, err := backup.Download(ctx, sb.s, sb.hostSnapshot, local, quiet{}); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(sb.size)
	const hostDir = "/var/lib/oc-recover/bench-upload"
	clean := func() {
		b.StopTimer()
		defer b.StartTimer()
		// The benchmark's own files only.
		if code, err := sb.s.Host(ctx, "rm -rf "+hostDir+" && install -d -m 0700 "+hostDir, nil, io.Discard, os.Stderr); err != nil || code != 0 {
			b.Fatalf("clean %s: %d %v", hostDir, code, err)
		}
	}
	upload := func(e *debugnode.Engine) time.Duration {
		b.StopTimer()
		s, err := e.Start(ctx, "master-0")
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close(ctx)
		f, err := os.Open(local)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		b.StartTimer()
		t0 := time.Now()
		t, err := s.Upload(ctx, f, sb.size, hostDir+"/snapshot.db", nil)
		if err != nil {
			b.Fatal(err)
		}
		if t.HostSHA256 != fileSHA256(b, local) {
			b.Fatalf("uploaded sha256 %s differs from the local file's", t.HostSHA256)
		}
		return time.Since(t0)
	}
	rate := func(d time.Duration) float64 { return float64(sb.size) / (1 << 20) / d.Seconds() }

	b.ResetTimer()
	var ours, oursPlain, cp time.Duration
	for i := 0; i < b.N; i++ {
		clean()
		settle(b)
		ours += upload(sb.engine)
		clean()
		settle(b)
		plain := *sb.engine
		plain.NoCompression = true
		oursPlain += upload(&plain)
		clean()
		settle(b)
		cp += sb.kubectl(b, "", "cp", "--retries=0", local, fmt.Sprintf("%s/%s:/host%s/cp.db", sb.s.Namespace, sb.s.Pod, hostDir))
	}
	b.StopTimer()
	n := time.Duration(b.N)
	b.ReportMetric(cp.Seconds()/ours.Seconds(), "x-faster-than-kubectl-cp")
	b.ReportMetric(cp.Seconds()/oursPlain.Seconds(), "x-uncompressed-vs-kubectl-cp")
	for name, d := range map[string]time.Duration{"zstd": ours, "uncompressed": oursPlain, "kubectl-cp": cp} {
		b.ReportMetric(rate(d/n), "MiB/s-"+name)
	}
	b.Logf("upload to the recovery host: oc-recover (zstd) %.0f MiB/s, uncompressed %.0f MiB/s, kubectl cp %.0f MiB/s", rate(ours/n), rate(oursPlain/n), rate(cp/n))
}
