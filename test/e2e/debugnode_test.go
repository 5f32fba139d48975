package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/oc-recover/oc-recover/pkg/debugnode"
	"github.com/oc-recover/oc-recover/test/box"
	"github.com/oc-recover/oc-recover/test/internal/boxtest"
)

func newEngine(t *testing.T, b *box.Box) *debugnode.Engine {
	t.Helper()
	client, err := kubernetes.NewForConfig(b.Admin)
	if err != nil {
		t.Fatal(err)
	}
	return &debugnode.Engine{Client: client, Config: b.Admin, Deadline: 10 * time.Minute, StartTimeout: 30 * time.Second}
}

// waitNamespaceGone waits until the namespace no longer exists.
func waitNamespaceGone(t *testing.T, b *box.Box, ns string) {
	t.Helper()
	err := box.WaitFor(context.Background(), 30*time.Second, "namespace "+ns+" gone", func(ctx context.Context) (bool, string, error) {
		n, err := b.Kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, "", nil
		}
		if err != nil {
			return false, err.Error(), nil
		}
		return false, string(n.Status.Phase), nil
	})
	if err != nil {
		t.Error(err)
	}
}

// A session is oc debug node + chroot /host: a privileged pod in a
// privileged temporary namespace, commands run on that node's host with exit
// codes and environment intact, and nothing left after Close.
func TestDebugNodeSessionRunsOnTheHostAndCleansUp(t *testing.T) {
	ctx := context.Background()
	e := newEngine(t, shared)
	s, err := e.Start(ctx, "master-1")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)

	ns, err := shared.Kube.CoreV1().Namespaces().Get(ctx, s.Namespace, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ns.Name, "openshift-recover-") || ns.Labels["pod-security.kubernetes.io/enforce"] != "privileged" ||
		ns.Labels[debugnode.ManagedByLabel] != "oc-recover" || ns.Annotations["openshift.io/node-selector"] != "" {
		t.Errorf("debug namespace not as SPEC says: %s %v %v", ns.Name, ns.Labels, ns.Annotations)
	}
	pod, err := shared.Kube.CoreV1().Pods(s.Namespace).Get(ctx, s.Pod, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := pod.Spec.Containers[0]
	if pod.Spec.NodeName != "master-1" || !pod.Spec.HostPID || !pod.Spec.HostNetwork || !pod.Spec.HostIPC ||
		c.SecurityContext == nil || !*c.SecurityContext.Privileged || *c.SecurityContext.RunAsUser != 0 ||
		pod.Spec.ActiveDeadlineSeconds == nil || pod.Spec.RestartPolicy != corev1.RestartPolicyNever ||
		len(pod.Spec.Tolerations) != 1 || pod.Spec.Tolerations[0].Operator != corev1.TolerationOpExists ||
		pod.Annotations["openshift.io/required-scc"] != "privileged" || pod.Labels[debugnode.ManagedByLabel] != "oc-recover" {
		t.Errorf("debug pod not as SPEC says: %+v", pod.Spec)
	}
	if c.Image != debugnode.DefaultImage {
		t.Errorf("image = %s, want the default (no --image, no tools image stream)", c.Image)
	}

	var out, errOut bytes.Buffer
	env := map[string]string{"HTTPS_PROXY": "http://proxy.example.com:3128", "QUOTED": `it's "$HOME" $(true)`}
	code, err := s.Host(ctx, `cat /etc/hostname; echo "$HTTPS_PROXY"; echo "$QUOTED"; echo oops >&2; exit 7`, env, &out, &errOut)
	if err != nil {
		t.Fatal(err)
	}
	if code != 7 {
		t.Errorf("exit code = %d, want 7", code)
	}
	if want := "master-1\nhttp://proxy.example.com:3128\nit's \"$HOME\" $(true)\n"; out.String() != want {
		t.Errorf("stdout = %q, want %q", out.String(), want)
	}
	if errOut.String() != "oops\n" {
		t.Errorf("stderr = %q", errOut.String())
	}

	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	waitNamespaceGone(t, shared, s.Namespace)
	// The debug pod's own containers: other pods (Prometheus) run on.
	if procs := boxtest.ProcessesUnder(filepath.Join(shared.Dir, "containers", pod.Spec.NodeName, string(pod.UID))); len(procs) > 0 {
		t.Errorf("debug pod processes still running after Close: %v", procs)
	}
}

// Download brings a host file over exec, compressed when the host has zstd,
// with sha256 checked on both ends; a missing file is a clear error.
func TestDebugNodeDownloadIsExactAndChecked(t *testing.T) {
	ctx := context.Background()
	data := make([]byte, 24<<20+12345)
	if _, err := rand.Read(data[:1<<20]); err != nil {
		t.Fatal(err)
	}
	copy(data[len(data)-5:], "trail")
	root := shared.Node("master-0").Sandbox.Root
	if err := os.MkdirAll(filepath.Join(root, "home/core/assets/backup"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "home/core/assets/backup/big file.db"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := newEngine(t, shared).Start(ctx, "master-0")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)

	var got bytes.Buffer
	var lastDone, lastTotal int64
	tr, err := s.Download(ctx, "/home/core/assets/backup/big file.db", &got, func(done, total int64) { lastDone, lastTotal = done, total })
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if !bytes.Equal(got.Bytes(), data) || tr.SHA256 != hex.EncodeToString(sum[:]) || tr.HostSHA256 != tr.SHA256 || tr.Size != int64(len(data)) {
		t.Fatalf("download not exact: size %d/%d sha %s host %s", tr.Size, len(data), tr.SHA256, tr.HostSHA256)
	}
	if !tr.Compressed {
		t.Error("the host has zstd, but the download was not compressed")
	}
	if lastDone != int64(len(data)) || lastTotal != int64(len(data)) {
		t.Errorf("progress ended at %d/%d", lastDone, lastTotal)
	}

	// Fetch brings the same bytes and the host's sha256, leaving the
	// hashing of what it stored to the caller.
	got.Reset()
	ft, err := s.Fetch(ctx, "/home/core/assets/backup/big file.db", &got, nil)
	if err != nil || !bytes.Equal(got.Bytes(), data) || ft.SHA256 != "" || ft.HostSHA256 != hex.EncodeToString(sum[:]) || ft.Size != int64(len(data)) {
		t.Fatalf("fetch: err %v, exact %v, sha %q, host %s, size %d", err, bytes.Equal(got.Bytes(), data), ft.SHA256, ft.HostSHA256, ft.Size)
	}

	_, err = s.Download(ctx, "/home/core/assets/backup/missing.db", &bytes.Buffer{}, nil)
	if err == nil || !strings.Contains(err.Error(), "missing.db") {
		t.Errorf("download of a missing file: err = %v, want one naming the file", err)
	}
}

// Compressed, the host's zstd reads the file itself, framed by the header
// tar writes for it and the zeros that end the archive: what the client
// decodes must be, byte for byte, the tar archive of the file (tar -cf -
// -b 1), for sizes on and off a 512-byte block and an empty file. A name
// too long for one header block goes the way of tar piped into zstd, and
// still arrives exactly.
func TestDebugNodeCompressedStreamIsTheFilesTarArchive(t *testing.T) {
	ctx := context.Background()
	const dir = "/home/core/assets/backup/"
	root := shared.Node("master-0").Sandbox.Root
	if err := os.MkdirAll(filepath.Join(root, dir), 0o755); err != nil {
		t.Fatal(err)
	}
	// The host's zstd, wrapped: it notes its arguments and keeps a copy of
	// what it sends, for each of its runs.
	const argsFile, streamFile = dir + "zstd-args", dir + "stream.zst"
	replaceHostTool(t, shared, "master-0", "zstd", "#!/bin/bash\nset -o pipefail\nprintf '%s\\n' \"$*\" >> "+argsFile+"\n/usr/bin/zstd \"$@\" | tee -a "+streamFile+"\n")
	s, err := newEngine(t, shared).Start(ctx, "master-0")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)

	longName := strings.Repeat("n", 110) + ".db"
	for _, c := range []struct {
		name string
		size int
	}{{"empty.db", 0}, {"blocks.db", 3 * 512}, {"odd.db", 1<<20 + 3}, {longName, 70_001}} {
		t.Run(fmt.Sprint(c.size), func(t *testing.T) {
			data := make([]byte, c.size)
			if _, err := rand.Read(data); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(root, dir, c.name), data, 0o600); err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{argsFile, streamFile} {
				if err := os.Remove(filepath.Join(root, f)); err != nil && !os.IsNotExist(err) {
					t.Fatal(err)
				}
			}
			var got bytes.Buffer
			tr, err := s.Download(ctx, dir+c.name, &got, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), data) || !tr.Compressed {
				t.Fatalf("download: exact %v, compressed %v", bytes.Equal(got.Bytes(), data), tr.Compressed)
			}
			args, err := os.ReadFile(filepath.Join(root, argsFile))
			if err != nil {
				t.Fatal(err)
			}
			readsTheFile := strings.Contains(string(args), dir+c.name)
			if c.name == longName {
				if readsTheFile {
					t.Errorf("zstd read a file whose name takes tar two header blocks itself: %s", args)
				}
				return
			}
			if !readsTheFile {
				t.Errorf("zstd did not read the file itself (arguments: %s)", args)
			}
			sent, err := os.ReadFile(filepath.Join(root, streamFile))
			if err != nil {
				t.Fatal(err)
			}
			dec, err := zstd.NewReader(nil)
			if err != nil {
				t.Fatal(err)
			}
			defer dec.Close()
			decoded, err := dec.DecodeAll(sent, nil)
			if err != nil {
				t.Fatal(err)
			}
			var archive bytes.Buffer
			if code, err := s.Host(ctx, "tar --format=gnu -cf - -b 1 -C "+dir+" -- "+c.name, nil, &archive, os.Stderr); err != nil || code != 0 {
				t.Fatalf("tar on the host: exit %d, %v", code, err)
			}
			if !bytes.Equal(decoded, archive.Bytes()) {
				t.Errorf("the decoded stream (%d bytes) is not the file's tar archive (%d bytes)", len(decoded), archive.Len())
			}
		})
	}
}

// A download that is cut short, carries extra bytes, or whose bytes do not
// hash as on the host fails, naming the file and node, on the zstd path
// and on the uncompressed one; and the uncompressed one is exact too.
func TestDebugNodeDownloadFailsOnACutStreamOrAWrongHash(t *testing.T) {
	ctx := context.Background()
	data := make([]byte, 8<<20+777)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	root := shared.Node("master-0").Sandbox.Root
	if err := os.MkdirAll(filepath.Join(root, "home/core/assets/backup"), 0o755); err != nil {
		t.Fatal(err)
	}
	const hostPath = "/home/core/assets/backup/checked.db"
	if err := os.WriteFile(filepath.Join(root, hostPath), data, 0o600); err != nil {
		t.Fatal(err)
	}
	compressed := newEngine(t, shared)
	plain := newEngine(t, shared)
	plain.NoCompression = true
	download := func(e *debugnode.Engine) (debugnode.Transfer, []byte, error) {
		s, err := e.Start(ctx, "master-0")
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close(ctx)
		var got bytes.Buffer
		tr, err := s.Download(ctx, hostPath, &got, nil)
		return tr, got.Bytes(), err
	}

	tr, got, err := download(plain)
	if err != nil || tr.Compressed || !bytes.Equal(got, data) || tr.SHA256 != tr.HostSHA256 || tr.Size != int64(len(data)) {
		t.Fatalf("uncompressed download: err %v, compressed %v, exact %v, size %d", err, tr.Compressed, bytes.Equal(got, data), tr.Size)
	}

	// "stream ended after" or "stream cut after" (when the host's exit
	// status, from SIGPIPE, closes the stream first): either names it.
	cut := fmt.Sprintf(" of %d bytes", len(data))
	for _, c := range []struct {
		name, tool, script, want string
		engine                   *debugnode.Engine
	}{
		{"zstd stream cut", "zstd", "#!/bin/bash\n/usr/bin/zstd \"$@\" | head -c 1000000\n", cut, compressed},
		{"plain stream cut", "tar", "#!/bin/bash\n/usr/bin/tar \"$@\" | head -c 100000\n", cut, plain},
		{"zstd stream too long", "zstd", "#!/bin/bash\n/usr/bin/zstd \"$@\"; printf extra | /usr/bin/zstd -q -c\n", "data after the archive", compressed},
		{"plain stream too long", "tar", "#!/bin/bash\n/usr/bin/tar \"$@\"; echo extra\n", "data after the archive", plain},
		{"a second file in the archive", "tar", "#!/bin/bash\n/usr/bin/tar \"$@\" /etc/passwd\n", "a second entry", plain},
		// Bytes 0x01 become 0x02 in the file's data; tar's headers are text.
		{"zstd stream corrupted", "zstd", "#!/bin/bash\n/usr/bin/zstd \"$@\" | /usr/bin/zstd -d -q -c | tr '\\001' '\\002' | /usr/bin/zstd -q -c\n", "sha256 mismatch", compressed},
		{"host hash differs", "openssl", "#!/bin/bash\necho 0000000000000000000000000000000000000000000000000000000000000000 \"$3\"\n", "sha256 mismatch", compressed},
		{"host hash differs, plain", "openssl", "#!/bin/bash\necho 0000000000000000000000000000000000000000000000000000000000000000 \"$3\"\n", "sha256 mismatch", plain},
		{"host hash fails", "openssl", "#!/bin/bash\necho no digest for you >&2; exit 3\n", "no digest for you", compressed},
	} {
		t.Run(c.name, func(t *testing.T) {
			replaceHostTool(t, shared, "master-0", c.tool, c.script)
			_, _, err := download(c.engine)
			if err == nil {
				t.Fatal("the download succeeded")
			}
			for _, want := range []string{c.want, hostPath, "master-0"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
		})
	}
}

// Ctrl-C while the debug namespace is being created: the apiserver creates
// it, under a generated name that only its answer tells. Start must still
// learn the name and remove the namespace, not leave it behind.
func TestDebugNodeStartInterruptedWhileCreatingTheNamespaceLeavesNothing(t *testing.T) {
	ctx, interrupt := context.WithCancel(context.Background())
	defer interrupt()
	before := map[string]bool{}
	list, err := shared.Kube.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: debugnode.ManagedByLabel + "=" + debugnode.ManagedByValue})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range list.Items {
		before[n.Name] = true
	}
	t.Cleanup(func() {
		// Should the test fail, the next ones must not find its namespace.
		list, _ := shared.Kube.CoreV1().Namespaces().List(context.Background(), metav1.ListOptions{LabelSelector: debugnode.ManagedByLabel + "=" + debugnode.ManagedByValue})
		for _, n := range list.Items {
			if !before[n.Name] {
				_ = debugnode.DeleteNamespace(context.Background(), shared.Kube, n.Name)
			}
		}
	})
	createdOnServer := false
	cfg := rest.CopyConfig(shared.Admin)
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
			resp, err := rt.RoundTrip(req)
			if req.Method == http.MethodPost && req.URL.Path == "/api/v1/namespaces" {
				createdOnServer = err == nil && resp.StatusCode == http.StatusCreated
				// The namespace exists now; the interruption lands before
				// its answer is read, as net/http then reports it.
				interrupt()
				if req.Context().Err() != nil {
					if resp != nil {
						resp.Body.Close()
					}
					return nil, req.Context().Err()
				}
			}
			return resp, err
		})
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := &debugnode.Engine{Client: client, Config: cfg, Deadline: time.Minute}
	if s, err := e.Start(ctx, "master-0"); err == nil {
		s.Close(context.Background())
		t.Fatal("Start succeeded although interrupted")
	}
	list, err = shared.Kube.CoreV1().Namespaces().List(context.Background(), metav1.ListOptions{LabelSelector: debugnode.ManagedByLabel + "=" + debugnode.ManagedByValue})
	if err != nil {
		t.Fatal(err)
	}
	if !createdOnServer {
		t.Fatal("the apiserver did not create the namespace: the interruption came too early to test anything")
	}
	for _, n := range list.Items {
		if !before[n.Name] && n.DeletionTimestamp == nil {
			t.Errorf("debug namespace %s left behind after the interruption", n.Name)
		}
	}
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// On a node whose kubelet is gone the debug pod never runs: Start says so
// and removes the namespace it made.
func TestDebugNodeStartOnStoppedNodeFailsAndCleansUp(t *testing.T) {
	t.Parallel()
	b := boxtest.StartBox(t, box.Options{})
	ctx := context.Background()
	if err := b.StopMachine(ctx, "master-2"); err != nil {
		t.Fatal(err)
	}
	e := newEngine(t, b)
	e.StartTimeout = 3 * time.Second
	s, err := e.Start(ctx, "master-2")
	if err == nil {
		s.Close(ctx)
		t.Fatal("a debug pod started on a stopped machine")
	}
	if !strings.Contains(err.Error(), "did not start") || !strings.Contains(err.Error(), "master-2") {
		t.Errorf("error does not explain: %v", err)
	}
	err = box.WaitFor(ctx, 30*time.Second, "no oc-recover namespace left", func(ctx context.Context) (bool, string, error) {
		left, err := debugnode.Leftovers(ctx, b.Kube)
		if err != nil {
			return false, err.Error(), nil
		}
		var names []string
		for _, ns := range left {
			if ns.DeletionTimestamp == nil {
				names = append(names, ns.Name)
			}
		}
		return len(names) == 0, strings.Join(names, ","), nil
	})
	if err != nil {
		t.Error(err)
	}
}
