package box

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"sort"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// The platform monitoring stack, as far as `oc recover health` sees it: the
// pod prometheus-k8s-0 in openshift-monitoring, whose prometheus container
// answers `curl -s http://localhost:9090/api/v1/alerts` with the alerts
// firing. The pod is real (the kubelet runs it, exec goes through the
// apiserver and the kubelet API, curl is the test machine's own, run in the
// container's view); Prometheus is the box: it serves the Prometheus HTTP
// API's alerts on 127.0.0.1:9090 inside the pod's own network namespace
// (kubelet_netns.go), where only processes of that pod reach it, as on a
// cluster where Prometheus listens on its pod's loopback. Watchdog always
// fires, as on every cluster; FireAlert adds others.
const (
	monitoringNamespace = "openshift-monitoring"
	prometheusPodName   = "prometheus-k8s-0"
	prometheusAddress   = "127.0.0.1:9090"
	// monitoringSyncPeriod is how often the stand-in looks at its pod.
	monitoringSyncPeriod = 200 * time.Millisecond
)

// monitoring is the box's Prometheus.
type monitoring struct {
	b       *Box
	started time.Time

	mu      sync.Mutex
	alerts  map[int]promAlert
	next    int
	paused  bool
	serving bool // the API listens in the pod's network
}

// promAlert is an alert as /api/v1/alerts lists it.
type promAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	State       string            `json:"state"`
	ActiveAt    time.Time         `json:"activeAt"`
	Value       string            `json:"value"`
}

func newMonitoring(b *Box) *monitoring {
	m := &monitoring{b: b, started: time.Now().UTC(), alerts: map[int]promAlert{}}
	m.add("Watchdog", "none", monitoringNamespace,
		"An alert that should always be firing to certify that Alertmanager is working properly.",
		"This is an alert meant to ensure that the entire alerting pipeline is functional.", m.started)
	return m
}

func (m *monitoring) add(name, severity, namespace, summary, description string, at time.Time) int {
	labels := map[string]string{"alertname": name, "severity": severity, "prometheus": "openshift-monitoring/k8s"}
	if namespace != "" {
		labels["namespace"] = namespace
	}
	annotations := map[string]string{"summary": summary}
	if description != "" {
		annotations["description"] = description
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.next++
	m.alerts[m.next] = promAlert{Labels: labels, Annotations: annotations, State: "firing", ActiveAt: at, Value: "1e+00"}
	return m.next
}

// FireAlert makes the box's Prometheus report an alert firing, with the
// severity label (critical, warning, info), the namespace label (none when
// empty) and the summary annotation given; clear stops it.
func (b *Box) FireAlert(name, severity, namespace, summary string) (clear func()) {
	id := b.monitoring.add(name, severity, namespace, summary, "", time.Now().UTC())
	return func() {
		b.monitoring.mu.Lock()
		defer b.monitoring.mu.Unlock()
		delete(b.monitoring.alerts, id)
	}
}

// StopMonitoring deletes the Prometheus pod and keeps it away, as when
// the monitoring stack is not installed or not running; start brings it
// back and waits until it answers.
func (b *Box) StopMonitoring(ctx context.Context) (start func(context.Context) error, err error) {
	m := b.monitoring
	m.mu.Lock()
	m.paused = true
	m.mu.Unlock()
	err = b.Kube.CoreV1().Pods(monitoringNamespace).Delete(ctx, prometheusPodName, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, err
	}
	err = WaitFor(ctx, time.Minute, "the Prometheus pod gone", func(ctx context.Context) (bool, string, error) {
		_, err := b.Kube.CoreV1().Pods(monitoringNamespace).Get(ctx, prometheusPodName, metav1.GetOptions{})
		return apierrors.IsNotFound(err), fmt.Sprint(err), nil
	})
	return func(ctx context.Context) error {
		m.mu.Lock()
		m.paused = false
		m.mu.Unlock()
		return m.waitServing(ctx)
	}, err
}

func (m *monitoring) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v1/alerts", func(w http.ResponseWriter, _ *http.Request) {
		m.mu.Lock()
		ids := make([]int, 0, len(m.alerts))
		for id := range m.alerts {
			ids = append(ids, id)
		}
		sort.Ints(ids)
		list := make([]promAlert, 0, len(ids))
		for _, id := range ids {
			list = append(list, m.alerts[id])
		}
		m.mu.Unlock()
		body := map[string]any{"status": "success", "data": map[string]any{"alerts": list}}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(body)
	})
	mux.HandleFunc("/-/ready", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("Prometheus Server is Ready.\n")) })
	return mux
}

// startMonitoring creates openshift-monitoring and starts the stand-in,
// which keeps its pod and serves in the pod's network.
func (b *Box) startMonitoring(ctx, runCtx context.Context) error {
	b.monitoring = newMonitoring(b)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: monitoringNamespace, Labels: map[string]string{"openshift.io/cluster-monitoring": "true"}}}
	if _, err := b.Kube.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	b.wg.Add(1)
	go func() { defer b.wg.Done(); b.monitoring.run(runCtx) }()
	return nil
}

// waitServing waits until Prometheus answers in its pod.
func (m *monitoring) waitServing(ctx context.Context) error {
	return WaitFor(ctx, time.Minute, "Prometheus listening in "+prometheusPodName, func(context.Context) (bool, string, error) {
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.serving, "", nil
	})
}

// run is the StatefulSet controller's part (a Prometheus pod that is gone,
// finished, or bound to a node that no longer exists is created again) and
// Prometheus's: while the pod's prometheus container runs, the API listens
// in its network.
func (m *monitoring) run(ctx context.Context) {
	for ctx.Err() == nil {
		if pid, done := m.ensurePod(ctx); pid != 0 {
			m.serve(ctx, pid, done)
		}
		sleepCtx(ctx, monitoringSyncPeriod)
	}
}

// ensurePod keeps the pod and returns its prometheus container's process
// when it runs.
func (m *monitoring) ensurePod(ctx context.Context) (int, <-chan struct{}) {
	m.mu.Lock()
	paused := m.paused
	m.mu.Unlock()
	if paused {
		return 0, nil
	}
	pods := m.b.Kube.CoreV1().Pods(monitoringNamespace)
	pod, err := pods.Get(ctx, prometheusPodName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		if _, err := pods.Create(ctx, m.podFor(m.b.monitoringNode()), metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) && ctx.Err() == nil {
			klogf("monitoring: create %s: %v", prometheusPodName, err)
		}
		return 0, nil
	case err != nil:
		return 0, nil
	}
	n := m.b.Node(pod.Spec.NodeName)
	if pod.DeletionTimestamp == nil && (n == nil || pod.Status.Phase == corev1.PodFailed || pod.Status.Phase == corev1.PodSucceeded) {
		_ = pods.Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0), Preconditions: metav1.NewUIDPreconditions(string(pod.UID))})
		return 0, nil
	}
	if n == nil || n.Kubelet == nil || pod.Status.Phase != corev1.PodRunning {
		return 0, nil
	}
	return n.Kubelet.containerProcess(pod.UID, "prometheus")
}

// serve listens in the network of the process pid until it exits.
func (m *monitoring) serve(ctx context.Context, pid int, done <-chan struct{}) {
	path := fmt.Sprintf("/proc/%d/ns/net", pid)
	if !ownNamespace(path) {
		return // not unshared yet
	}
	l, err := listenInNetwork(path, prometheusAddress)
	if err != nil {
		select {
		case <-done:
		default:
			klogf("monitoring: listen in %s: %v", path, err)
		}
		return
	}
	srv := &http.Server{Handler: m.handler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: discardLogger()}
	go func() { _ = srv.Serve(l) }()
	m.mu.Lock()
	m.serving = true
	m.mu.Unlock()
	select {
	case <-done:
	case <-ctx.Done():
	}
	m.mu.Lock()
	m.serving = false
	m.mu.Unlock()
	// The listener holds the pod's network: closing it lets the network go
	// with the pod.
	_ = srv.Close()
}

// listenInNetwork listens on addr in the network namespace at path. The
// socket is made on a thread that joined that network; the thread is
// never handed back to the Go scheduler (it ends with its goroutine), so
// no other goroutine ever runs in the pod's network. The socket stays in
// the network it was made in, whichever thread then serves it.
func listenInNetwork(path, addr string) (net.Listener, error) {
	type result struct {
		l   net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		ch <- func() result {
			f, err := os.Open(path)
			if err != nil {
				return result{err: err}
			}
			defer f.Close()
			if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
				return result{err: fmt.Errorf("setns: %w", err)}
			}
			if err := loopbackUp(); err != nil {
				return result{err: err}
			}
			l, err := net.Listen("tcp", addr)
			return result{l, err}
		}()
	}()
	r := <-ch
	return r.l, r.err
}

// loopbackUp brings up the loopback of the calling thread's network: a new
// network namespace has one, down.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("lo flags: %w", err)
	}
	if ifr.Uint16()&unix.IFF_UP != 0 {
		return nil
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("lo up: %w", err)
	}
	return nil
}

// monitoringNode is where the Prometheus pod runs: the first worker, as
// the monitoring stack's pods avoid the control plane, or the first
// control-plane node of a cluster without workers (a compact cluster's
// control plane is schedulable).
func (b *Box) monitoringNode() string {
	var master string
	for _, n := range b.NodeList() {
		if !n.Master {
			return n.Name
		}
		if master == "" {
			master = n.Name
		}
	}
	return master
}

// podFor is the Prometheus pod as the StatefulSet prometheus-k8s makes
// it, reduced to its prometheus container. Its process only holds the
// pod's network; the box serves the API in it.
func (m *monitoring) podFor(node string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:      prometheusPodName,
			Namespace: monitoringNamespace,
			Labels: map[string]string{
				"app.kubernetes.io/component": "prometheus", "app.kubernetes.io/instance": "k8s", "app.kubernetes.io/name": "prometheus",
				"app.kubernetes.io/part-of": "openshift-monitoring", "prometheus": "k8s", "statefulset.kubernetes.io/pod-name": prometheusPodName,
			},
			Annotations: map[string]string{"kubectl.kubernetes.io/default-container": "prometheus"},
		},
		Spec: corev1.PodSpec{
			NodeName:    node,
			Hostname:    prometheusPodName,
			Tolerations: []corev1.Toleration{{Key: "node-role.kubernetes.io/master", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
			Containers: []corev1.Container{{
				Name:    "prometheus",
				Image:   "quay.io/openshift-release-dev/ocp-v4.0-art-dev@sha256:" + fmt.Sprintf("%064x", 9090),
				Command: []string{"/bin/sh", "-c", "trap 'exit 0' TERM; while :; do sleep 3600 & wait $!; done"},
				Ports:   []corev1.ContainerPort{{Name: "web", ContainerPort: 9090, Protocol: corev1.ProtocolTCP}},
			}},
		},
	}
}
