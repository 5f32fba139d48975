package etcd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
)

// Namespace is where OpenShift runs etcd.
const Namespace = "openshift-etcd"

// Conn is an etcd client connected to one member through an API
// port-forward to that member's etcd pod. Close it.
type Conn struct {
	Client *clientv3.Client
	// Pod and Node are the etcd pod reached and its node.
	Pod, Node string
	stop      chan struct{}
}

// Close closes the client and the port-forward.
func (c *Conn) Close() {
	if c.Client != nil {
		_ = c.Client.Close()
	}
	if c.stop != nil {
		close(c.stop)
		c.stop = nil
	}
}

// ClientTLS reads the etcd client identity and CA the way OpenShift's own
// tools do: the etcd-client secret and the etcd-ca-bundle config map in
// openshift-etcd. They stay in memory; nothing is written to disk.
func ClientTLS(ctx context.Context, kube kubernetes.Interface) (*tls.Config, error) {
	secret, err := kube.CoreV1().Secrets(Namespace).Get(ctx, "etcd-client", metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("read the etcd client certificate (secret %s/etcd-client): %w", Namespace, err)
	}
	bundle, err := kube.CoreV1().ConfigMaps(Namespace).Get(ctx, "etcd-ca-bundle", metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("read the etcd CA (config map %s/etcd-ca-bundle): %w", Namespace, err)
	}
	pair, err := tls.X509KeyPair(secret.Data[corev1.TLSCertKey], secret.Data[corev1.TLSPrivateKeyKey])
	if err != nil {
		return nil, fmt.Errorf("secret %s/etcd-client: %w", Namespace, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(bundle.Data["ca-bundle.crt"])) {
		return nil, fmt.Errorf("config map %s/etcd-ca-bundle holds no CA certificate in ca-bundle.crt", Namespace)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// RunningPods returns the etcd pods that run with every container ready,
// by node name, in a stable order.
func RunningPods(pods []corev1.Pod) []corev1.Pod {
	var out []corev1.Pod
	for _, p := range pods {
		if p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil || len(p.Status.ContainerStatuses) == 0 {
			continue
		}
		ready := true
		for _, cs := range p.Status.ContainerStatuses {
			ready = ready && cs.Ready
		}
		if ready {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Spec.NodeName < out[j].Spec.NodeName })
	return out
}

// Connect port-forwards to the first of pods that answers and returns an
// etcd client on it. pods should be running etcd pods (RunningPods).
func Connect(ctx context.Context, kube kubernetes.Interface, cfg *rest.Config, tlsConfig *tls.Config, pods []corev1.Pod) (*Conn, error) {
	if len(pods) == 0 {
		return nil, fmt.Errorf("no running etcd pod to connect through")
	}
	var errs []string
	for _, p := range pods {
		c, err := connectPod(ctx, kube, cfg, tlsConfig, p)
		if err == nil {
			return c, nil
		}
		errs = append(errs, fmt.Sprintf("%s: %v", p.Name, err))
	}
	return nil, fmt.Errorf("no etcd member answered through the API: %s", strings.Join(errs, "; "))
}

func connectPod(ctx context.Context, kube kubernetes.Interface, cfg *rest.Config, tlsConfig *tls.Config, pod corev1.Pod) (*Conn, error) {
	transport, upgrader, err := spdy.RoundTripperFor(cfg)
	if err != nil {
		return nil, err
	}
	url := kube.CoreV1().RESTClient().Post().Resource("pods").Namespace(pod.Namespace).Name(pod.Name).SubResource("portforward").URL()
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, http.MethodPost, url)
	stop, ready := make(chan struct{}), make(chan struct{})
	fw, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{"0:2379"}, stop, ready, io.Discard, io.Discard)
	if err != nil {
		return nil, err
	}
	failed := make(chan error, 1)
	go func() { failed <- fw.ForwardPorts() }()
	select {
	case <-ready:
	case err := <-failed:
		return nil, fmt.Errorf("port-forward: %w", err)
	case <-ctx.Done():
		close(stop)
		return nil, ctx.Err()
	case <-time.After(30 * time.Second):
		close(stop)
		return nil, fmt.Errorf("port-forward did not become ready in 30s")
	}
	ports, err := fw.GetPorts()
	if err != nil || len(ports) != 1 {
		close(stop)
		return nil, fmt.Errorf("port-forward: no local port (%v)", err)
	}
	client, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{fmt.Sprintf("https://127.0.0.1:%d", ports[0].Local)},
		TLS:         tlsConfig,
		DialTimeout: 10 * time.Second,
		Logger:      zap.NewNop(),
		// One member, reached through one tunnel: never try the members'
		// own addresses, which this machine cannot reach.
		RejectOldCluster: false,
	})
	if err != nil {
		close(stop)
		return nil, err
	}
	c := &Conn{Client: client, Pod: pod.Name, Node: pod.Spec.NodeName, stop: stop}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := client.Status(sctx, client.Endpoints()[0]); err != nil {
		c.Close()
		return nil, fmt.Errorf("etcd through the port-forward: %w", err)
	}
	return c, nil
}
