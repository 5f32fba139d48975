// Package bench measures oc-recover against the tools an administrator
// would otherwise use, on the cluster-in-a-box, in the same run. Run with
// `make bench`; the ratios are reported as benchmark metrics.
package bench

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	mathrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/client-go/kubernetes"

	"github.com/oc-recover/oc-recover/pkg/backup"
	"github.com/oc-recover/oc-recover/pkg/debugnode"
	"github.com/oc-recover/oc-recover/pkg/etcd"
	"github.com/oc-recover/oc-recover/test/box"
)

// snapshotMiB is the size of the etcd data the benchmark backs up
// (BENCH_SNAPSHOT_MIB, default 1024: the "at least 1 GiB").
func snapshotMiB() int {
	if v, err := strconv.Atoi(os.Getenv("BENCH_SNAPSHOT_MIB")); err == nil && v > 0 {
		return v
	}
	return 1024
}

// fillEtcd writes about mib MiB of values shaped like what OpenShift keeps
// in etcd: runs of Kubernetes objects that share their structure and differ
// in names, uids, versions, timestamps and secret-like strings. A snapshot of
// them compresses about 9x with zstd -1, as a real cluster's does (~8.8x).
func fillEtcd(ctx context.Context, cli *clientv3.Client, mib int) error {
	const valueSize = 64 << 10
	return parallel(mib<<20/valueSize, 16, func(i int) error {
		// Outside the prefixes the apiserver watches: on a real cluster it
		// runs on other machines, here it would spend the box's two cores
		// decoding these objects while the transfers are timed.
		key := fmt.Sprintf("/openshift.io/bench/pods/project-%03d/app-%06d", i%300, i)
		_, err := cli.Put(ctx, key, objectsValue(i, valueSize))
		return err
	})
}

func randomHex(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(mathrand.Uint32())
	}
	return hex.EncodeToString(b)
}

// objectsValue builds one ~64 KiB etcd value: a run of similar objects, each a
// Kubernetes object with the fields every object has (names, uids,
// resource versions, timestamps, managed fields, images, env).
func objectsValue(i, size int) string {
	var b strings.Builder
	for j := 0; b.Len() < size; j++ {
		fmt.Fprintf(&b, `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"app-%d-%s","namespace":"project-%d","uid":"%s-%s-%s-%s-%s","resourceVersion":"%d","creationTimestamp":"2026-11-%02dT%02d:%02d:%02dZ","labels":{"app":"app-%d","pod-template-hash":"%s"},"ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"app-%d-%s","uid":"%s","controller":true,"blockOwnerDeletion":true}],"managedFields":[{"manager":"kube-controller-manager","operation":"Update","apiVersion":"v1","time":"2026-11-%02dT%02d:%02d:%02dZ","fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{"f:generateName":{},"f:labels":{".":{},"f:app":{},"f:pod-template-hash":{}},"f:ownerReferences":{".":{},"k:{\"uid\":\"%s\"}":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"app\"}":{".":{},"f:image":{},"f:imagePullPolicy":{},"f:name":{},"f:ports":{".":{},"k:{\"containerPort\":8080,\"protocol\":\"TCP\"}":{".":{},"f:containerPort":{},"f:protocol":{}}},"f:resources":{".":{},"f:limits":{".":{},"f:cpu":{},"f:memory":{}},"f:requests":{".":{},"f:cpu":{},"f:memory":{}}}}}}}}]},"spec":{"containers":[{"name":"app","image":"quay.io/openshift-release-dev/ocp-v4.0-art-dev@sha256:%s","ports":[{"containerPort":8080,"protocol":"TCP"}],"env":[{"name":"POD_NAME","valueFrom":{"fieldRef":{"fieldPath":"metadata.name"}}},{"name":"TOKEN","value":"%s"},{"name":"CERT","value":"%s"}],"resources":{"limits":{"cpu":"500m","memory":"512Mi"},"requests":{"cpu":"100m","memory":"128Mi"}},"terminationMessagePath":"/dev/termination-log","imagePullPolicy":"IfNotPresent"}],"restartPolicy":"Always","terminationGracePeriodSeconds":30,"dnsPolicy":"ClusterFirst","serviceAccountName":"default","nodeName":"worker-%d","securityContext":{"seLinuxOptions":{"level":"s0:c26,c15"}},"schedulerName":"default-scheduler"},"status":{"phase":"Running","podIP":"10.128.%d.%d","startTime":"2026-11-%02dT%02d:%02d:%02dZ"}}`,
			i, randomHex(3), i%300, randomHex(4), randomHex(2), randomHex(2), randomHex(2), randomHex(6), 100000+i*40+j, 1+j%28, j%24, j%60, i%60, i, randomHex(5), i, randomHex(5), randomHex(16),
			1+j%28, j%24, j%60, i%60, randomHex(16), strings.Repeat("ab", 8)+randomHex(24), randomHex(110), randomHex(12), j%12, i%250, j%250, 1+j%28, j%24, j%60, i%60)
	}
	return b.String()
}

// BenchmarkBackupTransfer compares, on the same snapshot in the same run:
// oc-recover's download as backup does it (one exec streaming the file
// through zstd --fast=3 while the host hashes it, decoded and written on
// separate goroutines, to the disk behind the transfer, and fsynced; and
// the same uncompressed) against
// `kubectl cp` and the raw `kubectl exec -- cat` stream from the same debug
// pod; and oc-recover's local verification (trailer, bbolt check, test
// restore) against `sha256sum` of the same file.
// snapshotBench is a one-master box whose etcd holds snapshotMiB of data,
// a snapshot of it on the host, a debug session there, and kubectl built
// from the box's Kubernetes release.
type snapshotBench struct {
	bx           *box.Box
	engine       *debugnode.Engine
	s            *debugnode.Session
	kubectlPath  string
	hostSnapshot string
	size         int64
}

func startSnapshotBench(b *testing.B) *snapshotBench {
	ctx := context.Background()
	bin := b.TempDir()
	kubectlPath := filepath.Join(bin, "kubectl")
	if out, err := exec.Command("go", "build", "-o", kubectlPath, "k8s.io/kubernetes/cmd/kubectl").CombinedOutput(); err != nil {
		b.Fatalf("build kubectl: %v\n%s", err, out)
	}
	bx, err := box.Start(ctx, box.Options{Masters: 1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(bx.Stop)
	cli, err := bx.EtcdClient()
	if err != nil {
		b.Fatal(err)
	}
	defer cli.Close()
	start := time.Now()
	if err := fillEtcd(ctx, cli, snapshotMiB()); err != nil {
		b.Fatal(err)
	}
	b.Logf("filled etcd with %d MiB in %v", snapshotMiB(), time.Since(start).Round(time.Second))

	kube, err := kubernetes.NewForConfig(bx.Admin)
	if err != nil {
		b.Fatal(err)
	}
	engine := &debugnode.Engine{Client: kube, Config: bx.Admin, Deadline: time.Hour}
	s, err := engine.Start(ctx, "master-0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close(context.Background()) })
	// The release's own script takes the snapshot: the hosts have no
	// etcdctl of their own (it is in the etcd image, which the script
	// copies it out of).
	var out strings.Builder
	if code, err := s.Host(ctx, "cluster-backup.sh /home/core/assets/backup/bench >/dev/null 2>&1 && ls /home/core/assets/backup/bench/snapshot_*.db", nil, &out, os.Stderr); err != nil || code != 0 {
		b.Fatalf("snapshot on the host: exit %d %v", code, err)
	}
	hostSnapshot := strings.TrimSpace(out.String())
	fi, err := os.Stat(filepath.Join(bx.Node("master-0").Sandbox.Root, hostSnapshot))
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("snapshot: %.0f MiB", float64(fi.Size())/(1<<20))
	return &snapshotBench{bx: bx, engine: engine, s: s, kubectlPath: kubectlPath, hostSnapshot: hostSnapshot, size: fi.Size()}
}

// kubectl runs kubectl against the box, its standard output into
// stdoutFile if set, and returns how long it took.
func (sb *snapshotBench) kubectl(b *testing.B, stdoutFile string, args ...string) time.Duration {
	cmd := exec.Command(sb.kubectlPath, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+sb.bx.Kubeconfig)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if stdoutFile != "" {
		f, err := os.Create(stdoutFile)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		cmd.Stdout = f
	}
	t0 := time.Now()
	if err := cmd.Run(); err != nil {
		b.Fatalf("kubectl %v: %v\n%s", args, err, stderr.String())
	}
	return time.Since(t0)
}

// settle flushes what the previous transfer left for the kernel to write,
// so that no method pays for another's, outside the timer.
func settle(b *testing.B) {
	b.StopTimer()
	defer b.StartTimer()
	if out, err := exec.Command("sync").CombinedOutput(); err != nil {
		b.Fatalf("sync: %v %s", err, out)
	}
}

func BenchmarkBackupTransfer(b *testing.B) {
	ctx := context.Background()
	sb := startSnapshotBench(b)
	engine, s, hostSnapshot, size := sb.engine, sb.s, sb.hostSnapshot, sb.size
	b.SetBytes(size)
	kubectl := func(stdoutFile string, args ...string) time.Duration { return sb.kubectl(b, stdoutFile, args...) }

	local := b.TempDir()
	// download is the transfer as `oc recover backup` does it
	// (backup.Download): Fetch into a *.part written to the disk behind
	// the transfer, fsynced and dropped from the page cache, with the
	// host's sha256 returned for the verification, which hashes the file
	// from disk (timed below as part of the local verification). kubectl cp
	// and cat are not asked to fsync: they are timed until they exit.
	hostSum := map[string]string{}
	download := func(e *debugnode.Engine, name string) time.Duration {
		ss, err := e.Start(ctx, "master-0")
		if err != nil {
			b.Fatal(err)
		}
		defer ss.Close(ctx)
		part := filepath.Join(local, name)
		if err := os.Remove(part); err != nil && !os.IsNotExist(err) {
			b.Fatal(err)
		}
		t0 := time.Now()
		f, err := backup.Download(ctx, ss, hostSnapshot, part, quiet{})
		if err != nil {
			b.Fatal(err)
		}
		hostSum[name] = f.SHA256
		return time.Since(t0)
	}
	rate := func(d time.Duration) float64 { return float64(size) / (1 << 20) / d.Seconds() }

	// bare is the transport alone: client-go SPDY exec of cat (and of zstd)
	// into io.Discard, with no decoding, hashing or disk.
	bare := func(script string) time.Duration {
		t0 := time.Now()
		if code, err := s.Host(ctx, script, nil, io.Discard, os.Stderr); err != nil || code != 0 {
			b.Fatalf("%s: %d %v", script, code, err)
		}
		return time.Since(t0)
	}
	b.Logf("transport alone (no hashing or disk): SPDY exec cat %.0f MiB/s; zstd --fast=3 on the host, not decompressed: %.0f MiB/s",
		rate(bare("cat "+hostSnapshot)), rate(bare("zstd --fast=3 -T1 --no-check -q -c "+hostSnapshot)))

	b.ResetTimer()
	var ours, oursPlain, cp, cat, sum, verify time.Duration
	for i := 0; i < b.N; i++ {
		settle(b)
		ours += download(engine, "ours.db")
		plain := *engine
		plain.NoCompression = true
		settle(b)
		oursPlain += download(&plain, "ours-plain.db")
		settle(b)
		cp += kubectl("", "cp", "--retries=0", s.Namespace+"/"+s.Pod+":/host"+hostSnapshot, filepath.Join(local, "cp.db"))
		settle(b)
		cat += kubectl(filepath.Join(local, "cat.db"), "exec", "-n", s.Namespace, s.Pod, "--", "cat", "/host"+hostSnapshot)
		settle(b)
		// Download left ours.db on the disk only; both verifications
		// below read it from the page cache, as sha256sum's reference
		// figures assume.
		if err := exec.Command("cat", filepath.Join(local, "ours.db")).Run(); err != nil {
			b.Fatalf("reading ours.db back: %v", err)
		}
		t0 := time.Now()
		if out, err := exec.Command("sha256sum", filepath.Join(local, "ours.db")).CombinedOutput(); err != nil {
			b.Fatalf("sha256sum: %v %s", err, out)
		}
		sum += time.Since(t0)
		t0 = time.Now()
		r, err := etcd.VerifySnapshot(filepath.Join(local, "ours.db"), true, local)
		if err != nil {
			b.Fatal(err)
		}
		verify += time.Since(t0)
		if r.SHA256 != hostSum["ours.db"] {
			b.Fatalf("downloaded snapshot: sha256 %s, on the host %s", r.SHA256, hostSum["ours.db"])
		}
		if plainSum := fileSHA256(b, filepath.Join(local, "ours-plain.db")); plainSum != hostSum["ours-plain.db"] {
			b.Fatalf("uncompressed download: sha256 %s, on the host %s", plainSum, hostSum["ours-plain.db"])
		}
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(cp.Seconds()/ours.Seconds(), "x-faster-than-kubectl-cp")
	b.ReportMetric(cat.Seconds()/oursPlain.Seconds(), "x-raw-exec-stream(uncompressed)")
	b.ReportMetric(verify.Seconds()/sum.Seconds(), "x-sha256sum(verify+restore)")
	for name, d := range map[string]time.Duration{"zstd": ours, "uncompressed": oursPlain, "kubectl-cp": cp, "kubectl-exec-cat": cat} {
		b.ReportMetric(rate(d/time.Duration(n)), "MiB/s-"+name)
	}
	b.Logf("oc-recover download (zstd): %.0f MiB/s; uncompressed: %.0f MiB/s; kubectl cp: %.0f MiB/s; kubectl exec cat: %.0f MiB/s",
		rate(ours/time.Duration(n)), rate(oursPlain/time.Duration(n)), rate(cp/time.Duration(n)), rate(cat/time.Duration(n)))
	b.Logf("local verification incl. test restore: %v; sha256sum: %v", (verify / time.Duration(n)).Round(time.Millisecond), (sum / time.Duration(n)).Round(time.Millisecond))
}

// quiet is a backup.Progress that shows nothing.
type quiet struct{}

func (quiet) Step(string, ...any)           {}
func (quiet) HostOutput(string)             {}
func (quiet) Transfer(string, int64, int64) {}

func fileSHA256(b *testing.B, path string) string {
	b.Helper()
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		b.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}
