package box

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// nodeAPIServers are the control-plane nodes' own kube-apiservers, as their
// hosts reach them: a relay on each node's address, port 6443, in front of
// the box's one in-process apiserver. A node's localhost kubeconfig names
// its relay, so that the etcd scripts' `oc` talks to that node's apiserver;
// StopNodeAPIServer makes one stop answering. The relay is open while the
// host runs its kube-apiserver static pod (kubeapiserver.go).
type nodeAPIServers struct {
	mu      sync.Mutex
	relays  map[string]*relay // node -> relay, nil while closed
	stopped map[string]bool   // by StopNodeAPIServer
}

// stoppedAPIServers holds the kubelets whose node's kube-apiserver is
// stopped: their kube-apiserver mirror pod is not Ready.
var stoppedAPIServers sync.Map // *FakeKubelet -> struct{}

// apiServerStopped tells the kubelet that a container of its node's
// kube-apiserver pod is not ready.
func (k *FakeKubelet) apiServerStopped(container string) bool {
	_, stopped := stoppedAPIServers.Load(k)
	return stopped && container == "kube-apiserver"
}

func nodeAPIServerAddr(n *Node) string { return net.JoinHostPort(n.IP.String(), "6443") }

// startNodeAPIServer opens node n's relay (again).
func (b *Box) startNodeAPIServer(n *Node) error {
	b.nodeAPI.mu.Lock()
	defer b.nodeAPI.mu.Unlock()
	if b.nodeAPI.relays == nil {
		b.nodeAPI.relays = map[string]*relay{}
	}
	if b.nodeAPI.relays[n.Name] != nil {
		return nil
	}
	r, err := newRelay(nodeAPIServerAddr(n), b.api.addr)
	if err != nil {
		return fmt.Errorf("%s's kube-apiserver: %w", n.Name, err)
	}
	b.nodeAPI.relays[n.Name] = r
	return nil
}

// writeLocalhostKubeconfig writes a control-plane host's localhost
// kubeconfig: its own kube-apiserver (the relay; the serving certificate
// names localhost, as the real localhost-serving certificate does), with
// credentials that may read the cluster operators.
func (b *Box) writeLocalhostKubeconfig(root string, n *Node) error {
	path := filepath.Join(root, localhostKubeconfig)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["localhost"] = &clientcmdapi.Cluster{Server: "https://" + nodeAPIServerAddr(n), TLSServerName: "localhost",
		CertificateAuthorityData: b.apiServerCA}
	cfg.AuthInfos["system:admin"] = &clientcmdapi.AuthInfo{Token: AdminToken}
	cfg.Contexts["system:admin"] = &clientcmdapi.Context{Cluster: "localhost", AuthInfo: "system:admin"}
	cfg.CurrentContext = "system:admin"
	return clientcmd.WriteToFile(*cfg, path)
}

// StopNodeAPIServer makes node's own kube-apiserver stop answering (its
// relay closed, open connections dropped) and its kube-apiserver-<node>
// mirror pod not Ready, as when that static pod is down; the cluster's
// API stays up on the other nodes.
func (b *Box) StopNodeAPIServer(node string) error {
	n := b.Node(node)
	if n == nil || !n.Master || n.Kubelet == nil {
		return fmt.Errorf("no control-plane node %q in the box", node)
	}
	b.nodeAPI.mu.Lock()
	if b.nodeAPI.stopped == nil {
		b.nodeAPI.stopped = map[string]bool{}
	}
	b.nodeAPI.stopped[node] = true
	b.nodeAPI.mu.Unlock()
	b.closeNodeAPIServer(node)
	stoppedAPIServers.Store(n.Kubelet, struct{}{})
	return nil
}

// closeNodeAPIServer closes node's relay, dropping its connections.
func (b *Box) closeNodeAPIServer(node string) {
	b.nodeAPI.mu.Lock()
	r := b.nodeAPI.relays[node]
	b.nodeAPI.relays[node] = nil
	b.nodeAPI.mu.Unlock()
	if r != nil {
		r.Close()
	}
}

// HangNodeAPIServer makes node's own kube-apiserver hang: connections to
// it are accepted and never answered (open ones dropped first), while its
// mirror pod still says Ready, as in the first minute of a hang before the
// kubelet's readiness probe fails. resume undoes it.
func (b *Box) HangNodeAPIServer(node string) (resume func(), err error) {
	b.nodeAPI.mu.Lock()
	r := b.nodeAPI.relays[node]
	b.nodeAPI.mu.Unlock()
	if r == nil {
		return nil, fmt.Errorf("no running kube-apiserver on %q in the box", node)
	}
	r.hung.Store(true)
	r.dropAll()
	return func() { r.hung.Store(false); r.dropAll() }, nil
}

// StartNodeAPIServer undoes StopNodeAPIServer.
func (b *Box) StartNodeAPIServer(node string) error {
	n := b.Node(node)
	if n == nil || !n.Master || n.Kubelet == nil {
		return fmt.Errorf("no control-plane node %q in the box", node)
	}
	b.nodeAPI.mu.Lock()
	delete(b.nodeAPI.stopped, node)
	b.nodeAPI.mu.Unlock()
	stoppedAPIServers.Delete(n.Kubelet)
	return b.startNodeAPIServer(n)
}

// closeNodeAPIServers closes every relay, when the box stops.
func (b *Box) closeNodeAPIServers() {
	b.nodeAPI.mu.Lock()
	defer b.nodeAPI.mu.Unlock()
	for name, r := range b.nodeAPI.relays {
		if r != nil {
			r.Close()
		}
		delete(b.nodeAPI.relays, name)
	}
}
