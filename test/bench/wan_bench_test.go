package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/oc-recover/oc-recover/pkg/backup"
)

// linkMiBps is the WAN link's rate in each direction (BENCH_LINK_MIBPS,
// default 50: a link between an administrator and a remote data centre).
func linkMiBps() int64 {
	if v, err := strconv.ParseInt(os.Getenv("BENCH_LINK_MIBPS"), 10, 64); err == nil && v > 0 {
		return v
	}
	return 50
}

// BenchmarkTransferOverWAN is the backup's download and the restore's
// upload with the box's exec streams limited to linkMiBps, as over a WAN
// link between the administrator and the cluster, against kubectl cp over
// the same link, in the same run. Compression on the wire is what pays
// there: a snapshot of objects compresses about 9x, and kubectl cp sends it
// as it is.
func BenchmarkTransferOverWAN(b *testing.B) {
	ctx := context.Background()
	sb := startSnapshotBench(b)
	local := b.TempDir()
	snapshot := filepath.Join(local, "snapshot.db")
	if _, err := backup.Download(ctx, sb.s, sb.hostSnapshot, snapshot, quiet{}); err != nil {
		b.Fatal(err)
	}
	const hostDir = "/var/lib/oc-recover/bench-wan"
	sb.bx.SetLinkRate(linkMiBps() << 20)
	b.Cleanup(func() { sb.bx.SetLinkRate(0) })
	b.SetBytes(2 * sb.size)
	pod := sb.s.Namespace + "/" + sb.s.Pod

	b.ResetTimer()
	var down, up, cpDown, cpUp time.Duration
	for i := 0; i < b.N; i++ {
		settle(b)
		down += sb.download(b, filepath.Join(local, "ours.db"))
		settle(b)
		cpDown += sb.kubectl(b, "", "cp", "--retries=0", pod+":/host"+sb.hostSnapshot, filepath.Join(local, "cp.db"))
		sb.cleanHostDir(b, hostDir)
		settle(b)
		up += sb.upload(b, sb.engine, snapshot, hostDir+"/snapshot.db")
		sb.cleanHostDir(b, hostDir)
		settle(b)
		cpUp += sb.kubectl(b, "", "cp", "--retries=0", snapshot, fmt.Sprintf("%s:/host%s/cp.db", pod, hostDir))
	}
	b.StopTimer()
	n := time.Duration(b.N)
	rate := func(d time.Duration) float64 { return float64(sb.size) / (1 << 20) / (d / n).Seconds() }
	b.ReportMetric(cpDown.Seconds()/down.Seconds(), "x-download-vs-kubectl-cp")
	b.ReportMetric(cpUp.Seconds()/up.Seconds(), "x-upload-vs-kubectl-cp")
	for name, d := range map[string]time.Duration{"download": down, "upload": up, "kubectl-cp-download": cpDown, "kubectl-cp-upload": cpUp} {
		b.ReportMetric(rate(d), "MiB/s-"+name)
	}
	b.Logf("over a %d MiB/s link, %.0f MiB snapshot: backup download %.0f MiB/s, kubectl cp %.0f MiB/s (%.1fx); restore upload %.0f MiB/s, kubectl cp %.0f MiB/s (%.1fx)",
		linkMiBps(), float64(sb.size)/(1<<20), rate(down), rate(cpDown), cpDown.Seconds()/down.Seconds(), rate(up), rate(cpUp), cpUp.Seconds()/up.Seconds())
}

// download is the transfer as `oc recover backup` does it (backup.Download:
// a *.part written to disk, fsynced), through the bench's debug session,
// checked against the host's sha256 once timed.
func (sb *snapshotBench) download(b *testing.B, path string) time.Duration {
	ctx := context.Background()
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		b.Fatal(err)
	}
	t0 := time.Now()
	f, err := backup.Download(ctx, sb.s, sb.hostSnapshot, path, quiet{})
	if err != nil {
		b.Fatal(err)
	}
	d := time.Since(t0)
	b.StopTimer()
	defer b.StartTimer()
	if sum := fileSHA256(b, path); sum != f.SHA256 {
		b.Fatalf("downloaded %s: sha256 %s, on the host %s", path, sum, f.SHA256)
	}
	return d
}
