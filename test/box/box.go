// Package box is the cluster-in-a-box: a real kube-apiserver on a real
// multi-member etcd, with OpenShift's CRDs and singletons, fake kubelets that
// run pods as processes in per-node host sandboxes, and simulated operators.
// End-to-end tests and `make demo` drive the real oc-recover binary against it.
package box

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	configclient "github.com/openshift/client-go/config/clientset/versioned"
	machineclient "github.com/openshift/client-go/machine/clientset/versioned"
	machineinformers "github.com/openshift/client-go/machine/informers/externalversions"
	machinelisters "github.com/openshift/client-go/machine/listers/machine/v1beta1"
	operatorclient "github.com/openshift/client-go/operator/clientset/versioned"
	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/rest"
)

// Options shape a box.
type Options struct {
	// Masters is the number of control-plane nodes, each with an etcd member (default 3).
	Masters int
	// Workers is the number of worker nodes (default 0).
	Workers int
	// Version is the cluster version (default 4.14.8).
	Version string
	// InstalledAgo is how long ago the cluster was installed (default 30 days).
	InstalledAgo time.Duration
	// Dir holds everything the box writes (default: a new temporary dir,
	// removed by Stop).
	Dir string
	// Log receives the simulators' messages (default: discarded).
	Log io.Writer
	// MinuteScale is how long a minute of host time lasts, for tools that
	// count in minutes such as `shutdown -h 1` (default: a minute).
	MinuteScale time.Duration
	// UserProvisioned leaves the Machine API out: no Machines, as on hosts
	// an installer did not provision (UPI).
	UserProvisioned bool
	// NodeCSRsOnBoot: a machine that boots again (StartMachine, PowerOn, a
	// reboot) finds its kubelet's certificates expired, as after a shutdown
	// longer than their validity: the node stays NotReady until the
	// kubelet's client CSR (asked by the node-bootstrapper) and then its
	// serving CSR are approved. Without it a kubelet needs CSRs only after
	// ExpireKubeletCertificates.
	NodeCSRsOnBoot bool
	// OperatorSettle is how long the cluster operators take to recover once
	// every node is Ready and etcd healthy (default 2s); they recover one
	// after another within it.
	OperatorSettle time.Duration
}

// Node is one simulated host: its Node object, kubelet, sandbox, Machine and
// (on control-plane nodes) etcd member.
type Node struct {
	Name        string
	IP          net.IP
	Master      bool
	MachineName string
	Sandbox     *Sandbox
	Kubelet     *FakeKubelet
	Etcd        *EtcdMember

	agent     *hostAgent         // the host's systemd
	stopAgent context.CancelFunc // ends the agent, for a host that is removed
}

// Box is a running cluster-in-a-box.
type Box struct {
	Dir          string
	Kubeconfig   string // the administrator's kubeconfig
	APIServerURL string
	ClusterID    string
	InfraID      string

	// Admin is the administrator's client config (a system:masters token).
	Admin    *rest.Config
	Kube     kubernetes.Interface
	Config   configclient.Interface
	Operator operatorclient.Interface
	Machine  machineclient.Interface

	opts          Options
	ownDir        bool
	privateDir    string
	tb            *processTB
	loopback      *rest.Config
	apiServerCA   []byte
	stopAPIServer func()
	etcdPKI       *etcdTLS
	csrSigner     *CertKey // signs the kubelets' certificates
	operators     *clusterOperators
	encryption    *encryptionController
	rollouts      *rollouts // the roller's rollouts, as the operators see them
	nodeAPI       nodeAPIServers
	cancel        context.CancelFunc
	wg            sync.WaitGroup
	stopOnce      sync.Once

	healthMu                      sync.Mutex
	healthyMembers, votingMembers int
	subnet                        string

	// nodesMu guards the hosts, which the Machine API simulator adds and
	// removes while the other simulators read them.
	nodesMu sync.RWMutex
	nodes   []*Node
	// nextHostIndex is the last octet of the next new host's address.
	nextHostIndex int

	// The simulators' view of Nodes and Machines (watched, not polled: a
	// benchmark adds thousands of them).
	informers        informers.SharedInformerFactory
	machineInformers machineinformers.SharedInformerFactory
	nodeLister       corelisters.NodeLister
	machineLister    machinelisters.MachineLister
	runCtx           context.Context
}

// Start builds and starts a box. The caller must Stop it.
func Start(ctx context.Context, opts Options) (b *Box, err error) {
	if opts.Masters == 0 {
		opts.Masters = 3
	}
	if opts.Version == "" {
		opts.Version = "4.14.8"
	}
	if opts.InstalledAgo == 0 {
		opts.InstalledAgo = 30 * 24 * time.Hour
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	if opts.MinuteScale == 0 {
		opts.MinuteScale = time.Minute
	}
	if opts.OperatorSettle == 0 {
		opts.OperatorSettle = 2 * time.Second
	}
	boxLogMu.Lock()
	boxLog = opts.Log
	boxLogMu.Unlock()
	b = &Box{opts: opts, ClusterID: newUUID(), InfraID: "box-" + randomHex(3)}
	if opts.Dir == "" {
		if b.Dir, err = os.MkdirTemp("", "oc-recover-box-"); err != nil {
			return nil, err
		}
		b.ownDir = true
	} else {
		b.Dir = opts.Dir
	}
	b.tb = newProcessTB("cluster-in-a-box", b.Dir, opts.Log)
	quietKlog()
	quietEtcdClients()
	defer func() {
		if err != nil {
			b.Stop()
			b = nil
		}
	}()
	b.privateDir = filepath.Join(b.Dir, "private")
	if err = os.MkdirAll(b.privateDir, 0o700); err != nil {
		return b, err
	}
	if err = b.createNodes(); err != nil {
		return b, err
	}
	if err = b.startEtcd(ctx); err != nil {
		return b, err
	}
	if err = b.startAPIServer(b.etcdEndpoints(), filepath.Join(b.privateDir, "apiserver-etcd-client")); err != nil {
		return b, err
	}
	if err = b.newClients(); err != nil {
		return b, err
	}
	if err = b.seedCluster(ctx); err != nil {
		return b, err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	b.cancel, b.runCtx = cancel, runCtx
	if err = b.startInformers(ctx, runCtx); err != nil {
		return b, err
	}
	op := &etcdOperator{b: b, period: 300 * time.Millisecond, clients: map[string]*clientv3.Client{}}
	b.wg.Add(1)
	go func() { defer b.wg.Done(); op.run(runCtx) }()
	b.startHostAgents(runCtx)
	b.wg.Add(1)
	go func() { defer b.wg.Done(); b.namespaceController(runCtx) }()
	b.rollouts = newRollouts()
	roller := &revisionRoller{b: b, period: 150 * time.Millisecond, installTime: time.Second, observed: map[string]string{}, started: map[string]time.Time{}}
	b.wg.Add(1)
	go func() { defer b.wg.Done(); roller.run(runCtx) }()
	b.encryption = &encryptionController{b: b, period: 250 * time.Millisecond}
	b.wg.Add(1)
	go func() { defer b.wg.Done(); b.encryption.run(runCtx) }()
	machines := &machineController{b: b, period: 200 * time.Millisecond, runningDelay: time.Second, hosts: map[types.UID]*provisionedHost{}}
	b.wg.Add(1)
	go func() { defer b.wg.Done(); machines.run(runCtx) }()
	b.operators = newClusterOperators(b, 250*time.Millisecond, opts.OperatorSettle)
	if err = b.operators.seed(ctx); err != nil {
		return b, err
	}
	b.wg.Add(1)
	go func() { defer b.wg.Done(); b.operators.run(runCtx) }()
	if err = b.WaitForEtcdMembersAvailable(ctx, fmt.Sprintf("%d members are available", opts.Masters)); err != nil {
		return b, err
	}
	if err = b.waitForStaticPods(ctx); err != nil {
		return b, err
	}
	return b, nil
}

// Stop tears the box down: simulators, kubelets (and every process they
// run), the apiserver, etcd, and the box's directory if the box made it.
func (b *Box) Stop() {
	b.stopOnce.Do(func() {
		t0 := time.Now()
		if b.cancel != nil {
			b.cancel()
		}
		b.wg.Wait()
		if b.informers != nil {
			b.informers.Shutdown()
		}
		if b.machineInformers != nil {
			b.machineInformers.Shutdown()
		}
		klogf("box stop: simulators %v", time.Since(t0))
		var wg sync.WaitGroup
		for _, n := range b.NodeList() {
			if n.Kubelet != nil {
				wg.Add(1)
				go func(k *FakeKubelet) { defer wg.Done(); k.stop(false) }(n.Kubelet)
			}
		}
		wg.Wait()
		klogf("box stop: kubelets %v", time.Since(t0))
		b.closeNodeAPIServers()
		if b.stopAPIServer != nil {
			b.stopAPIServer()
		}
		klogf("box stop: apiserver %v", time.Since(t0))
		b.tb.runCleanups()
		klogf("box stop: cleanups %v", time.Since(t0))
		for _, n := range b.NodeList() {
			if n.Etcd != nil {
				wg.Add(1)
				go func(m *EtcdMember) { defer wg.Done(); m.Stop() }(n.Etcd)
			}
		}
		wg.Wait()
		klogf("box stop: etcd %v", time.Since(t0))
		if b.ownDir {
			_ = os.RemoveAll(b.Dir)
		}
	})
}

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

// startEtcd issues the etcd PKI and starts one member per control-plane
// node, before anything else: on a real host the kubelet runs etcd's static
// pod without needing the API.
func (b *Box) startEtcd(ctx context.Context) error {
	ca, err := NewCA("etcd-signer", 5*365*24*time.Hour)
	if err != nil {
		return err
	}
	client, err := ca.Issue(CertSpec{CommonName: "etcd-client", Organization: []string{"etcd-client"}, Usages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil {
		return err
	}
	b.etcdPKI = &etcdTLS{ca: ca, client: client}
	apiDir := filepath.Join(b.privateDir, "apiserver-etcd-client")
	if err := os.MkdirAll(apiDir, 0o700); err != nil {
		return err
	}
	for name, data := range map[string][]byte{"client.crt": client.CertPEM, "client.key": client.KeyPEM, "ca.crt": ca.CertPEM} {
		if err := os.WriteFile(filepath.Join(apiDir, name), data, 0o600); err != nil {
			return err
		}
	}
	var initial []string
	for _, n := range b.masters() {
		n.Etcd = b.newNodeEtcdMember(n)
		initial = append(initial, n.Name+"="+n.Etcd.PeerURL())
	}
	for _, n := range b.masters() {
		m := n.Etcd
		// The first members create the cluster together.
		m.cluster, m.admitted = strings.Join(initial, ","), true
		if err := b.etcdPKI.writeMemberCerts(m.certDir, n.Name, n.IP); err != nil {
			return err
		}
		if err := m.Start(); err != nil {
			return err
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, n := range b.masters() {
		if err := n.Etcd.WaitReady(wctx); err != nil {
			return err
		}
	}
	return nil
}

// newNodeEtcdMember is a control-plane host's etcd member: data in the
// host's /var/lib/etcd, certificates where the box keeps them.
func (b *Box) newNodeEtcdMember(n *Node) *EtcdMember {
	return newEtcdMember(n.Name, n.IP, filepath.Join(b.privateDir, "etcd", n.Name),
		filepath.Join(n.Sandbox.Root, "var/lib/etcd"), filepath.Join(b.Dir, "etcd-"+n.Name+".log"))
}

func (b *Box) newClients() error {
	var err error
	if b.Kube, err = kubernetes.NewForConfig(b.loopback); err != nil {
		return err
	}
	// The test server's loopback config asks for protobuf, which the
	// OpenShift CRD-backed types cannot speak.
	jsonCfg := rest.CopyConfig(b.loopback)
	jsonCfg.ContentType = "application/json"
	jsonCfg.AcceptContentTypes = "application/json"
	if b.Config, err = configclient.NewForConfig(jsonCfg); err != nil {
		return err
	}
	if b.Operator, err = operatorclient.NewForConfig(jsonCfg); err != nil {
		return err
	}
	b.Machine, err = machineclient.NewForConfig(jsonCfg)
	return err
}

func (b *Box) seedCluster(ctx context.Context) error {
	steps := []func(context.Context) error{b.installCRDs, b.createNamespaces, b.seedClusterConfig, b.seedEtcdSecrets, b.seedOperators, b.seedKubeletPKI}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			return err
		}
	}
	var eps []string
	for _, n := range b.masters() {
		eps = append(eps, n.Etcd.ClientURL())
	}
	nodes := b.NodeList()
	for _, n := range nodes {
		if err := b.provisionHost(n, eps); err != nil {
			return fmt.Errorf("provision %s: %w", n.Name, err)
		}
		k, err := b.newKubelet(n)
		if err != nil {
			return err
		}
		k.SetEtcd(n.Etcd)
		n.Kubelet = k
	}
	errs := make(chan error, len(nodes))
	for _, n := range nodes {
		go func(n *Node) { errs <- n.Kubelet.Start(ctx) }(n)
	}
	for range nodes {
		if err := <-errs; err != nil {
			return err
		}
	}
	for _, n := range nodes {
		if b.opts.UserProvisioned {
			continue
		}
		if err := b.createMachine(ctx, n); err != nil {
			return err
		}
		if err := b.annotateNodeMachine(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

// newKubelet makes a host's kubelet.
func (b *Box) newKubelet(n *Node) (*FakeKubelet, error) {
	return newFakeKubelet(b.Kube, b.loopback, n.Name, n.IP, n.Sandbox, n.Master, filepath.Join(b.Dir, "containers", n.Name), b.etcdPKI.ca, b.csrSigner)
}

// provisionHost puts on a host what the installer leaves there: the static
// pods at their current revisions with their resources, etcd's certificates
// and the host tools.
func (b *Box) provisionHost(n *Node, endpoints []string) error {
	if err := b.installHostTools(n.Sandbox.Root, n, b.masters()); err != nil {
		return err
	}
	if !n.Master {
		return nil
	}
	if err := b.writeEtcdHostCerts(n.Sandbox.Root, b.masters()); err != nil {
		return err
	}
	for _, op := range staticPodOperators {
		err := writeStaticPodRevisions(n.Sandbox.Root, op.Pod, op.Revision, func(rev int32) error {
			pod := controlPlanePodManifest(op, rev)
			if op.Pod == "etcd" {
				pod = etcdPodManifest(n.Name, rev, endpoints)
			}
			return writeStaticPod(n.Sandbox.Root, op.Pod, rev, pod)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// startInformers starts watching Nodes and Machines for the simulators.
func (b *Box) startInformers(ctx, runCtx context.Context) error {
	b.informers = informers.NewSharedInformerFactory(b.Kube, 0)
	b.nodeLister = b.informers.Core().V1().Nodes().Lister()
	b.machineInformers = machineinformers.NewSharedInformerFactoryWithOptions(b.Machine, 0, machineinformers.WithNamespace("openshift-machine-api"))
	b.machineLister = b.machineInformers.Machine().V1beta1().Machines().Lister()
	b.informers.Start(runCtx.Done())
	b.machineInformers.Start(runCtx.Done())
	for typ, ok := range b.informers.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("watch %v: not synced", typ)
		}
	}
	for typ, ok := range b.machineInformers.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("watch %v: not synced", typ)
		}
	}
	return nil
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
	nodes, err := b.nodeLister.List(controlPlaneSelector)
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

// WaitFor polls cond until it holds, ctx ends or timeout passes; the error
// names what was awaited and the last state seen.
func WaitFor(ctx context.Context, timeout time.Duration, what string, cond func(ctx context.Context) (bool, string, error)) error {
	var last string
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		ok, state, err := cond(ctx)
		last = state
		return ok, err
	})
	if err != nil {
		return fmt.Errorf("waiting for %s (last seen: %s): %w", what, last, err)
	}
	return nil
}

// waitForStaticPods waits until every control-plane node's static pods have
// running mirror pods.
func (b *Box) waitForStaticPods(ctx context.Context) error {
	want := len(b.masters()) * len(staticPodOperators)
	return WaitFor(ctx, 60*time.Second, "static pods running", func(ctx context.Context) (bool, string, error) {
		running := 0
		for _, op := range staticPodOperators {
			pods, err := b.Kube.CoreV1().Pods(op.Namespace).List(ctx, metav1.ListOptions{})
			if err != nil {
				return false, err.Error(), nil
			}
			for _, p := range pods.Items {
				if p.Status.Phase == corev1.PodRunning {
					running++
				}
			}
		}
		return running == want, fmt.Sprintf("%d of %d running", running, want), nil
	})
}

// EtcdMembersAvailable returns the etcd operator's EtcdMembersAvailable message.
func (b *Box) EtcdMembersAvailable(ctx context.Context) (string, error) {
	etcd, err := b.Operator.OperatorV1().Etcds().Get(ctx, "cluster", metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	for _, c := range etcd.Status.Conditions {
		if c.Type == "EtcdMembersAvailable" {
			return c.Message, nil
		}
	}
	return "", nil
}

// WaitForEtcdMembersAvailable waits until the etcd operator reports message.
func (b *Box) WaitForEtcdMembersAvailable(ctx context.Context, message string) error {
	return WaitFor(ctx, 60*time.Second, fmt.Sprintf("EtcdMembersAvailable %q", message), func(ctx context.Context) (bool, string, error) {
		msg, err := b.EtcdMembersAvailable(ctx)
		return err == nil && msg == message, msg, nil
	})
}

// EtcdPod returns the etcd mirror pod of node, or nil.
func (b *Box) EtcdPod(ctx context.Context, node string) (*corev1.Pod, error) {
	p, err := b.Kube.CoreV1().Pods("openshift-etcd").Get(ctx, "etcd-"+node, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// moduleDir is the test module's root on disk, found from this file's
// location (tests and the demo binary run on the machine that built them).
func moduleDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

func randomHex(n int) string {
	buf := make([]byte, n)
	_, _ = rand.Read(buf)
	return hex.EncodeToString(buf)
}

func newUUID() string {
	buf := make([]byte, 16)
	_, _ = rand.Read(buf)
	buf[6] = buf[6]&0x0f | 0x40
	buf[8] = buf[8]&0x3f | 0x80
	h := hex.EncodeToString(buf)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
