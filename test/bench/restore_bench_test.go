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
	rate := func(d time.Duration) float64 { return float64(sb.size) / (1 << 20) / d.Seconds() }

	b.ResetTimer()
	var ours, oursPlain, cp time.Duration
	for i := 0; i < b.N; i++ {
		sb.cleanHostDir(b, hostDir)
		settle(b)
		ours += sb.upload(b, sb.engine, local, hostDir+"/snapshot.db")
		sb.cleanHostDir(b, hostDir)
		settle(b)
		plain := *sb.engine
		plain.NoCompression = true
		oursPlain += sb.upload(b, &plain, local, hostDir+"/snapshot.db")
		sb.cleanHostDir(b, hostDir)
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

// cleanHostDir empties the benchmark's own directory on the host, outside
// the timer.
func (sb *snapshotBench) cleanHostDir(b *testing.B, dir string) {
	b.StopTimer()
	defer b.StartTimer()
	ctx := context.Background()
	if code, err := sb.s.Host(ctx, "rm -rf "+dir+" && install -d -m 0700 "+dir, nil, io.Discard, os.Stderr); err != nil || code != 0 {
		b.Fatalf("clean %s: %d %v", dir, code, err)
	}
}

// upload is a restore's first transfer as debugnode's Upload does it (tar
// over SPDY exec, sha256 on both ends, renamed into place once they
// agree), in a debug session of its own started outside the timer.
func (sb *snapshotBench) upload(b *testing.B, e *debugnode.Engine, local, hostPath string) time.Duration {
	ctx := context.Background()
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
	t, err := s.Upload(ctx, f, sb.size, hostPath, nil)
	if err != nil {
		b.Fatal(err)
	}
	d := time.Since(t0)
	if t.HostSHA256 != fileSHA256(b, local) {
		b.Fatalf("uploaded sha256 %s differs from the local file's", t.HostSHA256)
	}
	return d
}
