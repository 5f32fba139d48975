package box

import (
	"context"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
)

// A kube-apiserver exits on a fatal error, and its kubelet starts it
// again. The one that matters here is a post-start hook that cannot
// finish: the RBAC bootstrap gives up when etcd has not let it ensure the
// default roles for 30 s (etcd lost its quorum just after the server
// started, or answers that slowly), and klog.Fatalf ends the process.
//
// The box's servers run in the test process, which must not end with
// them. So klog's exit ends only the goroutine that logged the error: its
// hook is then never done, and /healthz says so. The box whose server it
// was (the process may hold several boxes) sees it, stops the server, and
// its next sync starts a new one, as the kubelet would.

// fatals counts the fatal errors logged in this process.
var fatals atomic.Int64

// hookTimeout is how long the longest post-start hook may run before it
// gives up: a hook not done by then has failed.
const hookTimeout = 35 * time.Second

// endFatalGoroutine stands in for klog's exit.
func endFatalGoroutine(int) {
	fatals.Add(1)
	runtime.Goexit()
}

func init() { klog.OsExit = endFatalGoroutine }

// restartIfCrashed stops the running server when a fatal error was logged
// since it was last checked and one of its post-start hooks is not done
// past hookTimeout; the caller's next sync starts a new one.
func (s *kubeAPIServer) restartIfCrashed(ctx context.Context) {
	n := fatals.Load()
	s.mu.Lock()
	server, seen, started := s.server, s.seenFatals, s.startedAt
	s.mu.Unlock()
	if server == nil || n == seen {
		return
	}
	client, err := kubernetes.NewForConfig(server.ClientConfig)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	body, _ := client.Discovery().RESTClient().Get().AbsPath("/healthz").Param("verbose", "").Do(ctx).Raw()
	var failed []string
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "[-]poststarthook/") {
			failed = append(failed, strings.Fields(strings.TrimPrefix(line, "[-]"))[0])
		}
	}
	switch {
	case len(failed) == 0 && len(body) > 0:
		s.markFatalsSeen(n) // not this server's
	case len(failed) == 0:
		// No answer: look again at the next sync.
	case time.Since(started) < hookTimeout:
		// Its hooks may still be running: look again.
	default:
		klogf("kube-apiserver: post-start hook %s failed and the server would have exited: restarting it, as its kubelet does", strings.Join(failed, ", "))
		s.markFatalsSeen(n)
		s.down()
	}
}

func (s *kubeAPIServer) markFatalsSeen(n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seenFatals = n
}
