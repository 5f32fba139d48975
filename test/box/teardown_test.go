package box_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/oc-recover/oc-recover/test/box"
	"github.com/oc-recover/oc-recover/test/internal/boxtest"
)

// Stop leaves nothing behind: no directory, no host process (even of a
// debug pod still running), no listening port, no goroutine.
func TestBoxTearsDownCleanly(t *testing.T) {
	runtime.GC()
	goroutinesBefore := runtime.NumGoroutine()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b, err := box.Start(ctx, box.Options{})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			b.Stop()
		}
	}()
	r := tools.Run(t, b, "", "kubectl", "debug", "node/master-0", "--profile=sysadmin", "--image="+boxtest.DebugImage, "--", "sleep", "600")
	if r.Code != 0 {
		t.Fatalf("kubectl debug: %s", r)
	}
	err = box.WaitFor(ctx, 30*time.Second, "the debug pod running", func(ctx context.Context) (bool, string, error) {
		pods, err := b.Kube.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
		if err != nil || len(pods.Items) == 0 {
			return false, fmt.Sprint(err), nil
		}
		return pods.Items[0].Status.Phase == corev1.PodRunning, string(pods.Items[0].Status.Phase), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if procs := boxtest.ProcessesUnder(b.Dir); len(procs) == 0 {
		t.Fatal("the debug pod's sleep is not running as a host process (the check below would prove nothing)")
	}
	dir := b.Dir
	var addrs []string
	for _, n := range b.NodeList() {
		for _, port := range []string{"2379", "2380", "10250"} {
			addrs = append(addrs, net.JoinHostPort(n.IP.String(), port))
		}
	}

	start := time.Now()
	b.Stop()
	stopped = true
	t.Logf("teardown took %v", time.Since(start))

	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("box directory %s still exists (%v)", dir, err)
	}
	if procs := boxtest.ProcessesUnder(dir); len(procs) > 0 {
		t.Errorf("host processes left running: %v", procs)
	}
	for _, a := range addrs {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			t.Errorf("%s still in use after teardown: %v", a, err)
			continue
		}
		_ = ln.Close()
	}
	// Goroutines wind down asynchronously (closed connections, timers); a
	// small allowance covers process-wide ones that client libraries start
	// once and keep (klog's flush daemon, metrics registries).
	const allowance = 15
	var now int
	for i := 0; i < 100; i++ {
		runtime.GC()
		if now = runtime.NumGoroutine(); now <= goroutinesBefore+allowance {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("goroutines: %d before the box, %d after its teardown", goroutinesBefore, now)
	if now > goroutinesBefore+allowance {
		buf := make([]byte, 1<<20)
		t.Errorf("goroutines: %d before the box, %d after its teardown\n%s", goroutinesBefore, now, buf[:runtime.Stack(buf, true)])
	}
}
