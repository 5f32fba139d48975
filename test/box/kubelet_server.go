package box

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/kubelet/pkg/cri/streaming/portforward"
	remotecommandserver "k8s.io/kubelet/pkg/cri/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"
)

const (
	streamIdleTimeout   = 4 * time.Hour
	streamCreateTimeout = 30 * time.Second
)

func (k *FakeKubelet) routes() http.Handler {
	mux := http.NewServeMux()
	for _, p := range []string{"/exec/{ns}/{pod}/{container}", "/exec/{ns}/{pod}/{uid}/{container}"} {
		mux.HandleFunc(p, k.serveExec)
	}
	for _, p := range []string{"/attach/{ns}/{pod}/{container}", "/attach/{ns}/{pod}/{uid}/{container}"} {
		mux.HandleFunc(p, k.serveAttach)
	}
	for _, p := range []string{"/portForward/{ns}/{pod}", "/portForward/{ns}/{pod}/{uid}"} {
		mux.HandleFunc(p, k.servePortForward)
	}
	mux.HandleFunc("/containerLogs/{ns}/{pod}/{container}", k.serveLogs)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	return mux
}

func (k *FakeKubelet) findPod(ns, name string) *corev1.Pod {
	for _, p := range k.listPods() {
		if p.Namespace == ns && p.Name == name {
			return p
		}
	}
	return nil
}

func (k *FakeKubelet) container(pod *corev1.Pod, name string) *corev1.Container {
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return &pod.Spec.Containers[i]
		}
	}
	return nil
}

type execFunc func(ctx context.Context, name string, uid types.UID, container string, cmd []string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize, timeout time.Duration) error

func (f execFunc) ExecInContainer(ctx context.Context, name string, uid types.UID, container string, cmd []string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize, timeout time.Duration) error {
	return f(ctx, name, uid, container, cmd, in, out, errw, tty, resize, timeout)
}

func (k *FakeKubelet) serveExec(w http.ResponseWriter, req *http.Request) {
	pod := k.findPod(req.PathValue("ns"), req.PathValue("pod"))
	if pod == nil {
		http.Error(w, "pod does not exist", http.StatusNotFound)
		return
	}
	c := k.container(pod, req.PathValue("container"))
	if c == nil {
		http.Error(w, "container not found", http.StatusNotFound)
		return
	}
	opts, err := remotecommandserver.NewOptions(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	run := execFunc(func(ctx context.Context, _ string, _ types.UID, _ string, argv []string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize, _ time.Duration) error {
		go func() {
			for range resize {
			}
		}()
		return k.exec(ctx, pod, c, argv, in, out, errw, tty)
	})
	remotecommandserver.ServeExec(w, req, run, pod.Name, pod.UID, c.Name, req.URL.Query()["command"], opts,
		streamIdleTimeout, streamCreateTimeout, remotecommandProtocols())
}

func (k *FakeKubelet) exec(ctx context.Context, pod *corev1.Pod, c *corev1.Container, argv []string, in io.Reader, out, errw io.WriteCloser, tty bool) error {
	k.mu.Lock()
	rt := k.pods[pod.UID]
	k.mu.Unlock()
	if rt == nil && ownNetwork(pod) {
		// Its network lives as long as its containers: none runs.
		return fmt.Errorf("container %s of pod %s/%s is not running", c.Name, pod.Namespace, pod.Name)
	}
	if rt != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		defer context.AfterFunc(rt.ctx, cancel)()
	}
	cmd, err := k.Sandbox.Command(ctx, k.hostCommand(pod, c, argv))
	if err != nil {
		return err
	}
	if out != nil {
		cmd.Stdout = out
	} else {
		cmd.Stdout = io.Discard
	}
	switch {
	case errw != nil:
		cmd.Stderr = errw
	case tty:
		cmd.Stderr = cmd.Stdout
	default:
		cmd.Stderr = io.Discard
	}
	var stdin io.WriteCloser
	if in != nil {
		if stdin, err = cmd.StdinPipe(); err != nil {
			return err
		}
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	if stdin != nil {
		// Not waited for: a client that keeps stdin open must not keep the
		// exec alive after the process has exited.
		go func() {
			_, _ = io.Copy(stdin, in)
			_ = stdin.Close()
		}()
	}
	err = cmd.Wait()
	if code := exitCode(err); err != nil && code != 0 {
		return utilexec.CodeExitError{Err: err, Code: code}
	}
	return err
}

type attachFunc func(ctx context.Context, name string, uid types.UID, container string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error

func (f attachFunc) AttachContainer(ctx context.Context, name string, uid types.UID, container string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	return f(ctx, name, uid, container, in, out, errw, tty, resize)
}

// serveAttach connects to a container's main process. Its output is
// replayed from the start, so a short-lived command's output is not lost to
// the race between "container running" and the client attaching.
func (k *FakeKubelet) serveAttach(w http.ResponseWriter, req *http.Request) {
	pod := k.findPod(req.PathValue("ns"), req.PathValue("pod"))
	var proc *containerProc
	if pod != nil {
		k.mu.Lock()
		if rt := k.pods[pod.UID]; rt != nil {
			proc = rt.containers[req.PathValue("container")]
		}
		k.mu.Unlock()
	}
	if proc == nil {
		http.Error(w, "container not running", http.StatusNotFound)
		return
	}
	opts, err := remotecommandserver.NewOptions(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	attach := attachFunc(func(ctx context.Context, _ string, _ types.UID, _ string, in io.Reader, out, errw io.WriteCloser, _ bool, resize <-chan remotecommand.TerminalSize) error {
		go func() {
			for range resize {
			}
		}()
		if in != nil && proc.stdin != nil {
			go func() {
				_, _ = io.Copy(proc.stdin, in)
				if pod.Spec.Containers[0].StdinOnce {
					_ = proc.stdin.Close()
				}
			}()
		}
		if out == nil {
			out = nopWriteCloser{io.Discard}
		}
		return proc.log.Follow(ctx, out)
	})
	remotecommandserver.ServeAttach(w, req, attach, pod.Name, pod.UID, req.PathValue("container"), opts,
		streamIdleTimeout, streamCreateTimeout, remotecommandProtocols())
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

type portForwardFunc func(ctx context.Context, name string, uid types.UID, port int32, stream io.ReadWriteCloser) error

func (f portForwardFunc) PortForward(ctx context.Context, name string, uid types.UID, port int32, stream io.ReadWriteCloser) error {
	return f(ctx, name, uid, port, stream)
}

// servePortForward connects to a port in the pod's network. Every pod of the
// box shares its node's address (host network), as etcd's pods do.
func (k *FakeKubelet) servePortForward(w http.ResponseWriter, req *http.Request) {
	pod := k.findPod(req.PathValue("ns"), req.PathValue("pod"))
	if pod == nil {
		http.Error(w, "pod does not exist", http.StatusNotFound)
		return
	}
	opts, err := portforward.NewV4Options(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	forward := portForwardFunc(func(ctx context.Context, _ string, _ types.UID, port int32, stream io.ReadWriteCloser) error {
		defer stream.Close()
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(k.IP.String(), strconv.Itoa(int(port))))
		if err != nil {
			return fmt.Errorf("pod %s port %d: %w", pod.Name, port, err)
		}
		defer conn.Close()
		errc := make(chan error, 2)
		go func() { _, err := io.Copy(conn, stream); errc <- err }()
		go func() { _, err := io.Copy(stream, conn); errc <- err }()
		return <-errc
	})
	portforward.ServePortForward(w, req, forward, pod.Name, pod.UID, opts, streamIdleTimeout, streamCreateTimeout, portforward.SupportedProtocols)
}

func (k *FakeKubelet) serveLogs(w http.ResponseWriter, req *http.Request) {
	pod := k.findPod(req.PathValue("ns"), req.PathValue("pod"))
	if pod == nil {
		http.Error(w, "pod does not exist", http.StatusNotFound)
		return
	}
	var proc *containerProc
	k.mu.Lock()
	if rt := k.pods[pod.UID]; rt != nil {
		proc = rt.containers[req.PathValue("container")]
	}
	k.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain")
	if proc == nil {
		if _, mirror := pod.Annotations[mirrorPodAnnotation]; mirror {
			fmt.Fprintf(w, "static pod %s on %s, run from /etc/kubernetes/manifests\n", pod.Name, k.Node)
			return
		}
		http.Error(w, "container not found", http.StatusNotFound)
		return
	}
	if req.URL.Query().Get("follow") == "true" {
		_ = proc.log.Follow(req.Context(), flushWriter{w})
		return
	}
	_, _ = w.Write(proc.log.Bytes())
}

type flushWriter struct{ w http.ResponseWriter }

func (f flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if fl, ok := f.w.(http.Flusher); ok {
		fl.Flush()
	}
	return n, err
}
