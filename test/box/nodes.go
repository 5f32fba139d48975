package box

import (
	"crypto/rand"
	"fmt"
	"math/big"
	"net"
	"path/filepath"
	"sort"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
)

// pickSubnet finds a free 127.x.y.0/24 for the nodes' addresses, so that
// several boxes (a test run and a demo) can run at once.
func pickSubnet(hosts int) (string, error) {
	for attempt := 0; attempt < 50; attempt++ {
		x, _ := rand.Int(rand.Reader, big.NewInt(250))
		y, _ := rand.Int(rand.Reader, big.NewInt(250))
		prefix := fmt.Sprintf("127.%d.%d.", x.Int64()+2, y.Int64()+1)
		free := true
		for i := 0; i < hosts && free; i++ {
			for _, port := range []int{2379, 2380, 12379, kubeletPort} {
				ln, err := net.Listen("tcp", fmt.Sprintf("%s%d:%d", prefix, 11+i, port))
				if err != nil {
					free = false
					break
				}
				_ = ln.Close()
			}
		}
		if free {
			return prefix, nil
		}
	}
	return "", fmt.Errorf("no free loopback subnet for the box's nodes")
}

func (b *Box) createNodes() error {
	total := b.opts.Masters + b.opts.Workers
	prefix, err := pickSubnet(total + 8) // room for nodes added later
	if err != nil {
		return err
	}
	b.subnet = prefix
	for i := 0; i < total; i++ {
		master := i < b.opts.Masters
		name := fmt.Sprintf("master-%d", i)
		if !master {
			name = fmt.Sprintf("worker-%d", i-b.opts.Masters)
		}
		if err := b.addNodeObject(name, master, 11+i); err != nil {
			return err
		}
	}
	b.nextHostIndex = 11 + total
	return nil
}

func (b *Box) addNodeObject(name string, master bool, hostIndex int) error {
	n := &Node{Name: name, IP: net.ParseIP(fmt.Sprintf("%s%d", b.subnet, hostIndex)), Master: master}
	if !b.opts.UserProvisioned {
		n.MachineName = b.InfraID + "-" + name
	}
	sb, err := NewSandbox(filepath.Join(b.Dir, "nodes", name), name)
	if err != nil {
		return err
	}
	n.Sandbox = sb
	b.addNode(n)
	return nil
}

// addNode puts a host in the box's list, once everything the simulators
// read of it (sandbox, kubelet, etcd member) is set.
func (b *Box) addNode(n *Node) {
	b.nodesMu.Lock()
	defer b.nodesMu.Unlock()
	b.nodes = append(b.nodes, n)
}

// removeNode takes a host (whose machine was deleted) out of the list.
func (b *Box) removeNode(n *Node) {
	b.nodesMu.Lock()
	defer b.nodesMu.Unlock()
	for i, m := range b.nodes {
		if m == n {
			b.nodes = append(b.nodes[:i:i], b.nodes[i+1:]...)
			return
		}
	}
}

// NodeList returns the box's hosts as they are now: the Machine API
// simulator adds a host for a new Machine and removes the host of a deleted
// one.
func (b *Box) NodeList() []*Node {
	b.nodesMu.RLock()
	defer b.nodesMu.RUnlock()
	return append([]*Node(nil), b.nodes...)
}

func (b *Box) masters() []*Node {
	var out []*Node
	for _, n := range b.NodeList() {
		if n.Master {
			out = append(out, n)
		}
	}
	return out
}

// Node returns the node called name, or nil.
func (b *Box) Node(name string) *Node {
	for _, n := range b.NodeList() {
		if n.Name == name {
			return n
		}
	}
	return nil
}

func (b *Box) etcdEndpoints() []string {
	var eps []string
	for _, n := range b.masters() {
		if n.Etcd != nil {
			eps = append(eps, n.Etcd.ClientURL())
		}
	}
	return eps
}

// controlPlaneSelector selects the control-plane Nodes.
var controlPlaneSelector = func() labels.Selector {
	req, err := labels.NewRequirement("node-role.kubernetes.io/master", selection.Exists, nil)
	if err != nil {
		panic(err)
	}
	return labels.NewSelector().Add(*req)
}()

// controlPlaneNodes are the control-plane Node objects, as the operators
// see them (whatever their readiness), by name.
func (b *Box) controlPlaneNodes() ([]*corev1.Node, error) {
	nodes, err := b.nodeLister().List(controlPlaneSelector)
	if err != nil {
		return nil, err
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Name < nodes[j].Name })
	return nodes, nil
}

func (b *Box) controlPlaneNodeNames() ([]string, error) {
	nodes, err := b.controlPlaneNodes()
	if err != nil {
		return nil, err
	}
	names := make([]string, len(nodes))
	for i, n := range nodes {
		names[i] = n.Name
	}
	return names, nil
}
