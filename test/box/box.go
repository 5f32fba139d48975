// Package box is the cluster-in-a-box: a real kube-apiserver on a real
// multi-member etcd, with OpenShift's CRDs and singletons, fake kubelets that
// run pods as processes in per-node host sandboxes, and simulated operators.
// End-to-end tests and `make demo` drive the real oc-recover binary against it.
package box

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	configclient "github.com/openshift/client-go/config/clientset/versioned"
	machineclient "github.com/openshift/client-go/machine/clientset/versioned"
	operatorclient "github.com/openshift/client-go/operator/clientset/versioned"
	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
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
	// NodeLeaseDuration is the duration of the kubelets' leases in
	// kube-node-lease, renewed every quarter of it (default 40s, the
	// kubelet's). A test that judges liveness in seconds scales it down.
	NodeLeaseDuration time.Duration
	// NodeMonitorGracePeriod is how long after the API answers a booting
	// kubelet (PowerOn, a kubelet without certificates) the node lifecycle
	// controller marks its node NotReady, unless the kubelet posted Ready
	// first; meanwhile the node shows its status from before, Ready. Zero
	// (the default) marks it at once, and PowerOn returns after that; with
	// a grace period PowerOn returns once the API answers.
	NodeMonitorGracePeriod time.Duration
	// LeaderRenewDeadline is how long the simulated controllers go without
	// the API before they lose their leases and restart, listing afresh
	// (default 107s, OpenShift's; leaderelection.go).
	LeaderRenewDeadline time.Duration
	// CertRegeneration is how long the kube-apiserver's cert-regeneration
	// controller takes to regenerate a certificate of the kube-apiserver
	// operator's rotations that expired (certregen.go); zero (the default)
	// runs no such controller, and an expired certificate stays expired.
	CertRegeneration time.Duration
	// EtcdQuotaBytes is etcd's backend quota: what every member enforces
	// (a write that would pass it raises the NOSPACE alarm) and what the
	// etcd operator puts in the etcd pods' environment and etcd.env as
	// ETCD_QUOTA_BACKEND_BYTES. Default: the release's, 8 GiB from 4.9
	// on, 7 GiB before. A small one lets a test fill etcd in seconds.
	EtcdQuotaBytes int64
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

	opts        Options
	ownDir      bool
	privateDir  string
	tb          *processTB
	loopback    *rest.Config
	apiServerCA []byte
	// adminSigner issues the client certificates the apiserver trusts;
	// adminCert is the installer's system:admin.
	adminSigner, adminCert *CertKey
	api                    *kubeAPIServer
	etcdPKI                *etcdTLS
	csrSigner              *CertKey // signs the kubelets' certificates
	certRegen              *certRegenerator
	operators              *clusterOperators
	mco                    *machineConfigOperator
	monitoring             *monitoring // the platform Prometheus (monitoring.go)
	encryption             *encryptionController
	rollouts               *rollouts // the roller's rollouts, as the operators see them
	nodeAPI                nodeAPIServers
	link                   *wanLink // the administrator's link to the hosts' streams (link.go)
	cancel                 context.CancelFunc
	wg                     sync.WaitGroup
	stopOnce               sync.Once

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
	// caches are the simulators' informers (leaderelection.go).
	caches simCaches
	runCtx context.Context
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
	if opts.EtcdQuotaBytes == 0 {
		opts.EtcdQuotaBytes = defaultEtcdQuota(opts.Version)
	}
	boxLogMu.Lock()
	boxLog = opts.Log
	boxLogMu.Unlock()
	b = &Box{opts: opts, ClusterID: newUUID(), InfraID: "box-" + randomHex(3), link: newWANLink()}
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
	b.startEndpointSliceController(runCtx)
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
	if opts.CertRegeneration > 0 {
		b.certRegen = newCertRegenerator(b, opts.CertRegeneration)
		b.wg.Add(1)
		go func() { defer b.wg.Done(); b.certRegen.run(runCtx) }()
	}
	b.operators = newClusterOperators(b, 250*time.Millisecond, opts.OperatorSettle)
	if err = b.operators.seed(ctx); err != nil {
		return b, err
	}
	b.wg.Add(1)
	go func() { defer b.wg.Done(); b.operators.run(runCtx) }()
	if err = b.startMachineConfigOperator(ctx, runCtx); err != nil {
		return b, err
	}
	if err = b.startMonitoring(ctx, runCtx); err != nil {
		return b, err
	}
	if err = b.WaitForEtcdMembersAvailable(ctx, fmt.Sprintf("%d members are available", opts.Masters)); err != nil {
		return b, err
	}
	if err = b.waitForStaticPods(ctx); err != nil {
		return b, err
	}
	if err = b.monitoring.waitServing(ctx); err != nil {
		return b, err
	}
	// From here the API follows the hosts' kube-apiserver static pods.
	b.wg.Add(1)
	go func() { defer b.wg.Done(); b.api.run(runCtx) }()
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
		b.stopCaches()
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
		if b.api != nil {
			b.api.down()
			b.api.releasePort()
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
		filepath.Join(n.Sandbox.Root, "var/lib/etcd"), filepath.Join(b.Dir, "etcd-"+n.Name+".log"), b.opts.EtcdQuotaBytes)
}

func (b *Box) newClients() error {
	var err error
	if b.Kube, err = kubernetes.NewForConfig(b.loopback); err != nil {
		return err
	}
	jsonCfg := b.jsonConfig()
	if b.Config, err = configclient.NewForConfig(jsonCfg); err != nil {
		return err
	}
	if b.Operator, err = operatorclient.NewForConfig(jsonCfg); err != nil {
		return err
	}
	b.Machine, err = machineclient.NewForConfig(jsonCfg)
	return err
}

// jsonConfig is the loopback config speaking JSON: the test server's asks
// for protobuf, which the OpenShift CRD-backed types cannot speak.
func (b *Box) jsonConfig() *rest.Config {
	cfg := rest.CopyConfig(b.loopback)
	cfg.ContentType = "application/json"
	cfg.AcceptContentTypes = "application/json"
	return cfg
}

func (b *Box) seedCluster(ctx context.Context) error {
	steps := []func(context.Context) error{b.installCRDs, b.createNamespaces, b.seedClusterConfig, b.seedEtcdSecrets, b.seedOperators, b.seedKubeletPKI, b.seedKASCertificates}
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
	k, err := newFakeKubelet(b.Kube, b.loopback, n.Name, n.IP, n.Sandbox, n.Master, filepath.Join(b.Dir, "containers", n.Name), b.etcdPKI.ca, b.csrSigner)
	if err != nil {
		return nil, err
	}
	k.liveness.leaseDuration, k.liveness.grace = b.opts.NodeLeaseDuration, b.opts.NodeMonitorGracePeriod
	k.link = b.link
	return k, nil
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
				pod = etcdPodManifest(n.Name, rev, endpoints, b.etcdComputedEnv())
			}
			return writeStaticPod(n.Sandbox.Root, op.Pod, rev, pod, b.revisionFiles(op.Pod))
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// startInformers starts watching Nodes and Machines for the simulators.
func (b *Box) startInformers(ctx, runCtx context.Context) error {
	return b.startCaches(ctx, runCtx)
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
