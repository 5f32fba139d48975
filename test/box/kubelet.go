package box

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
)

const (
	kubeletPort          = 10250
	mirrorPodAnnotation  = "kubernetes.io/config.mirror"
	kubeletVersionString = "v1.27.6+f67aeb3"
)

// FakeKubelet stands in for a node's kubelet: it registers the Node, runs the
// pods bound to it as processes in the node's sandbox, runs static pods from
// the sandbox's manifests directory, and serves exec, attach, port-forward and
// logs to the real apiserver.
//
// Its code is split by concern: the service's lifecycle and the node's
// registration here, the pods bound to the node in kubelet_pods.go, static
// and mirror pods in kubelet_static.go, the etcd container in
// kubelet_etcd.go, the kubelet API in kubelet_server.go, certificates in
// certs.go and the container runtime's table (crictl) in containers.go.
type FakeKubelet struct {
	// The node and its host.
	Node    string
	IP      net.IP
	Sandbox *Sandbox
	Master  bool

	// Fixed at creation.
	client kubernetes.Interface
	// config reaches the API as the box's loopback user, whom the kubelet
	// impersonates to ask for certificates as the node-bootstrapper or as
	// the node itself (certs.go).
	config *rest.Config
	// csrSigner signs the kubelet's certificates once their CSRs are
	// approved, as kube-controller-manager's CSR signer does.
	csrSigner    *CertKey
	containerDir string

	// lifecycle serialises booting, power-off and the service's start and
	// stop, which the host agent and the box's faults may ask for at once.
	lifecycle sync.Mutex

	// mu guards the fields below.
	mu sync.Mutex

	// Pods bound to the node (kubelet_pods.go).
	pods map[types.UID]*podRuntime

	// Static pods (kubelet_static.go).
	static map[string]*staticPod // by manifest pod name (etcd, kube-apiserver, ...)
	// staticRunning are the static pods whose containers run. A pod whose
	// manifest went away stays here until its containers (the etcd member)
	// have stopped, so that crictl never reports them gone too early.
	staticRunning map[string]*runningStaticPod

	// The etcd container of the etcd static pod (kubelet_etcd.go): etcd is
	// the node's etcd member (control-plane nodes only), run while
	// etcd-pod.yaml is in the manifests directory.
	etcd *EtcdMember
	// unstoppableEtcd: the etcd pod's containers ignore their stop
	// (UnstoppableEtcd).
	unstoppableEtcd atomic.Bool
	// crashingKubeAPIServer: the kube-apiserver pod's container exits as
	// soon as it starts (CrashLoopKubeAPIServer).
	crashingKubeAPIServer atomic.Bool
	// etcdSeenRunning: the member ran when last looked at, so finding it
	// stopped means it exited by itself (removed from its cluster).
	etcdSeenRunning bool
	// etcdRetryAt is when a failed etcd container is started again.
	etcdRetryAt time.Time
	// restarts is the etcd container's restart count.
	restarts int32

	// Registration and certificates (certs.go).
	serveCert  tls.Certificate
	registered bool
	// certsExpired: the kubelet's client certificate has expired (or was
	// lost). At its next start the kubelet runs its static pods, asks for
	// new certificates through CSRs, and connects to the API, Ready, only
	// once both are issued.
	certsExpired bool
	// bootDone is closed when a service started in the background (a
	// machine booting, or a kubelet without certificates) has connected to
	// the API or was stopped; nil when the service started in the foreground.
	bootDone chan struct{}
	// silent is closed once a service started in the background has seen
	// its node marked NotReady, or connected; with a node grace period,
	// once the API answered it (kubelet_lease.go).
	silent chan struct{}
	// liveness is the node's lease and the node lifecycle controller's
	// view of it (kubelet_lease.go).
	liveness kubeletLiveness

	// The container runtime lives as long as the machine is up. Pods'
	// processes belong to it, not to the kubelet service, so that they
	// outlive `systemctl restart kubelet` as they do under CRI-O.
	runtimeCtx    context.Context
	runtimeCancel context.CancelFunc
	runtimeDone   chan struct{}

	// The kubelet service (systemctl start|stop kubelet).
	serviceCancel context.CancelFunc
	serving       bool
	serviceUp     chan struct{} // closed while serving
	serviceSince  time.Time
	servicePID    atomic.Int64 // the service's process id in its journal
	server        *http.Server
	link          *wanLink // nil: unlimited
	informers     informers.SharedInformerFactory
	podLister     func() []*corev1.Pod
	loopDone      chan struct{}
}

func newFakeKubelet(client kubernetes.Interface, config *rest.Config, node string, ip net.IP, sb *Sandbox, master bool, containerDir string, ca, csrSigner *CertKey) (*FakeKubelet, error) {
	serving, err := ca.Issue(CertSpec{CommonName: "system:node:" + node, Organization: []string{"system:nodes"},
		DNSNames: []string{node}, IPs: []net.IP{ip}, Usages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	if err != nil {
		return nil, err
	}
	pair, err := tls.X509KeyPair(serving.CertPEM, serving.KeyPEM)
	if err != nil {
		return nil, err
	}
	return &FakeKubelet{Node: node, IP: ip, Sandbox: sb, Master: master, client: client, config: config, csrSigner: csrSigner, containerDir: containerDir,
		pods: map[types.UID]*podRuntime{}, static: map[string]*staticPod{}, staticRunning: map[string]*runningStaticPod{},
		serveCert: pair, serviceUp: make(chan struct{})}, nil
}

// Start boots the node's container runtime and then the kubelet service. It
// is what "the machine boots" means in the box. The kubelet registers the
// node Ready before Start returns, unless its certificates have expired
// (ExpireCertificates): then it connects in the background, as Boot does.
func (k *FakeKubelet) Start(ctx context.Context) error {
	return k.start(ctx, false)
}

// Boot is a machine booting with the rest of the cluster, whose API may not
// answer yet: the runtime and the kubelet service start, the static pods
// run (etcd among them, which brings the API back), and the kubelet
// connects to the API in the background: first the node lifecycle
// controller marks the node NotReady (its status is from before the boot),
// then, with expired certificates, the kubelet asks for new ones through
// CSRs, and at last it posts the node Ready.
func (k *FakeKubelet) Boot(ctx context.Context) error {
	return k.start(ctx, true)
}

func (k *FakeKubelet) start(ctx context.Context, background bool) error {
	k.lifecycle.Lock()
	defer k.lifecycle.Unlock()
	k.mu.Lock()
	if k.runtimeCancel == nil {
		k.runtimeCtx, k.runtimeCancel = context.WithCancel(context.Background())
		k.runtimeDone = make(chan struct{})
		go k.runtimeLoop(k.runtimeCtx, k.runtimeDone)
	}
	k.mu.Unlock()
	return k.startService(ctx, background)
}

// StartService is `systemctl start kubelet`: the kubelet registers the node
// (first time) and posts it Ready, serves the kubelet API, runs the pods
// bound to the node and syncs the static pods with the manifests directory.
// Containers that kept running while it was stopped are adopted as they are.
func (k *FakeKubelet) StartService(ctx context.Context) error {
	k.lifecycle.Lock()
	defer k.lifecycle.Unlock()
	return k.startService(ctx, false)
}

// StopService is `systemctl stop kubelet`: the kubelet stops serving its API
// and syncing pods, and the node turns NotReady as the node lifecycle
// controller would make it. Containers keep running, as under CRI-O.
func (k *FakeKubelet) StopService(ctx context.Context) error {
	k.lifecycle.Lock()
	defer k.lifecycle.Unlock()
	if !k.stopService() {
		return nil
	}
	return k.setNodeReady(ctx, false)
}

// RestartService is `systemctl restart kubelet`: too quick for the node to
// turn NotReady, and no container is restarted.
func (k *FakeKubelet) RestartService(ctx context.Context) error {
	k.lifecycle.Lock()
	defer k.lifecycle.Unlock()
	k.stopService()
	return k.startService(ctx, false)
}

// ServiceStatus says whether the kubelet service runs, since when (or since
// when it is stopped) and under which process id its journal names it.
func (k *FakeKubelet) ServiceStatus() (active bool, since time.Time, pid int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.serving || k.bootDone != nil, k.serviceSince, int(k.servicePID.Load())
}

// serviceActive is ServiceStatus's first answer alone.
func (k *FakeKubelet) serviceActive() bool {
	active, _, _ := k.ServiceStatus()
	return active
}

// startService starts the kubelet service. In the foreground it connects
// to the API (registers the node Ready) before it returns; in the
// background (background set, the certificates expired, or the API not
// answering, as while a restore brings it back) it runs the static pods at
// once and connects when it can (connectInBackground).
func (k *FakeKubelet) startService(ctx context.Context, background bool) error {
	if !background && !k.apiAnswers(ctx) {
		background = true
	}
	k.mu.Lock()
	if k.runtimeCancel == nil {
		k.mu.Unlock()
		return fmt.Errorf("kubelet %s: the machine is not running", k.Node)
	}
	if k.serviceCancel != nil {
		k.mu.Unlock()
		return nil
	}
	runtimeCtx := k.runtimeCtx
	serviceCtx, cancel := context.WithCancel(runtimeCtx)
	k.serviceCancel = cancel
	k.servicePID.Store(2000 + time.Now().UnixNano()%60000)
	background = background || k.certsExpired
	var bootDone, silent chan struct{}
	loopDone := make(chan struct{})
	if background {
		bootDone, silent = make(chan struct{}), make(chan struct{})
		k.bootDone, k.silent, k.loopDone = bootDone, silent, loopDone
		k.serviceSince = time.Now()
	}
	k.mu.Unlock()
	if background {
		k.unitJournal("Started kubelet.service - Kubernetes Kubelet.")
		go k.staticPodLoop(serviceCtx, loopDone)
		go func() {
			defer close(bootDone)
			k.connectInBackground(serviceCtx, runtimeCtx, silent)
		}()
		return nil
	}

	if err := k.connect(ctx, serviceCtx, runtimeCtx); err != nil {
		cancel()
		k.mu.Lock()
		k.serviceCancel = nil
		k.mu.Unlock()
		k.unitJournal("kubelet.service: Failed with result 'exit-code': %v", err)
		return err
	}
	k.mu.Lock()
	k.loopDone = loopDone
	k.mu.Unlock()
	k.unitJournal("Started kubelet.service - Kubernetes Kubelet.")
	go k.staticPodLoop(serviceCtx, loopDone)
	return nil
}

// apiAnswers says whether the API answers within a few seconds.
func (k *FakeKubelet) apiAnswers(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	return k.client.Discovery().RESTClient().Get().AbsPath("/readyz").Do(ctx).Error() == nil
}

// connect registers the node Ready, serves the kubelet API and watches the
// pods bound to the node.
func (k *FakeKubelet) connect(ctx, serviceCtx, runtimeCtx context.Context) error {
	if err := k.registerNode(ctx); err != nil {
		return err
	}
	k.journal(`"Successfully registered node" node=%q`, k.Node)
	if err := k.writePKI(); err != nil {
		klogf("kubelet %s: certificates on the host: %v", k.Node, err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(k.IP.String(), strconv.Itoa(kubeletPort)))
	if err != nil {
		return fmt.Errorf("kubelet %s: %w", k.Node, err)
	}
	if k.link != nil {
		ln = k.link.listen(ln)
	}
	k.mu.Lock()
	serveCert := k.serveCert
	k.mu.Unlock()
	srv := &http.Server{Handler: k.routes(), TLSConfig: &tls.Config{Certificates: []tls.Certificate{serveCert}}, ErrorLog: discardLogger()}

	factory := informers.NewSharedInformerFactoryWithOptions(k.client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", k.Node).String()
	}))
	podInformer := factory.Core().V1().Pods().Informer()
	_, _ = podInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { k.syncPod(runtimeCtx, obj.(*corev1.Pod)) },
		UpdateFunc: func(_, obj any) { k.syncPod(runtimeCtx, obj.(*corev1.Pod)) },
		// A force-deleted pod (grace period 0) is gone from the API at once,
		// without the update carrying a deletion timestamp; its containers
		// must die all the same.
		DeleteFunc: func(obj any) {
			if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = tomb.Obj
			}
			if pod, ok := obj.(*corev1.Pod); ok {
				go k.killDeleted(pod)
			}
		},
	})
	lister := factory.Core().V1().Pods().Lister()
	k.mu.Lock()
	k.server, k.informers = srv, factory
	k.podLister = func() []*corev1.Pod {
		pods, _ := lister.List(everything())
		return pods
	}
	k.mu.Unlock()
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	factory.Start(serviceCtx.Done())
	factory.WaitForCacheSync(serviceCtx.Done())
	k.killOrphans()

	k.mu.Lock()
	k.serving, k.serviceSince = true, time.Now()
	close(k.serviceUp)
	k.mu.Unlock()
	go k.renewLease(serviceCtx)
	return nil
}

// stopService stops the kubelet service, leaving containers and the node's
// status alone; it reports whether the service was running.
func (k *FakeKubelet) stopService() bool {
	k.mu.Lock()
	cancel, boot := k.serviceCancel, k.bootDone
	k.serviceCancel, k.bootDone, k.silent = nil, nil, nil
	k.mu.Unlock()
	if cancel != nil {
		k.unitJournal("Stopping kubelet.service - Kubernetes Kubelet...")
		cancel()
	}
	if boot != nil {
		// A background start sets what it connected only while the
		// service runs: wait for it before taking it down.
		<-boot
	}
	k.mu.Lock()
	srv, factory, done := k.server, k.informers, k.loopDone
	k.server, k.informers, k.loopDone = nil, nil, nil
	if k.serving || boot != nil {
		k.serviceSince = time.Now()
	}
	if k.serving {
		k.serving = false
		k.serviceUp = make(chan struct{})
	}
	k.mu.Unlock()
	if cancel == nil {
		return false
	}
	if srv != nil {
		_ = srv.Close()
	}
	if factory != nil {
		factory.Shutdown()
	}
	if done != nil {
		<-done
	}
	k.unitJournal("kubelet.service: Deactivated successfully.")
	return true
}

// awaitService waits until the kubelet service runs: a stopped kubelet
// reports nothing to the API, and catches up when it is back.
func (k *FakeKubelet) awaitService(ctx context.Context) bool {
	for {
		k.mu.Lock()
		serving, up := k.serving, k.serviceUp
		k.mu.Unlock()
		if serving {
			return true
		}
		select {
		case <-up:
		case <-ctx.Done():
			return false
		}
	}
}

// Stop is the machine going down: the kubelet stops serving and every
// process it runs is killed, static pods (and so the etcd member) included.
func (k *FakeKubelet) Stop() { k.stop(true) }

// stop powers the node's runtime off, and the etcd member too when stopEtcd
// is set (the box's teardown stops members itself, after the apiserver).
func (k *FakeKubelet) stop(stopEtcd bool) {
	k.lifecycle.Lock()
	defer k.lifecycle.Unlock()
	k.stopService()
	k.mu.Lock()
	cancel, done := k.runtimeCancel, k.runtimeDone
	k.runtimeCtx, k.runtimeCancel, k.runtimeDone = nil, nil, nil
	runtimes := make([]*podRuntime, 0, len(k.pods))
	for _, r := range k.pods {
		runtimes = append(runtimes, r)
	}
	k.pods = map[types.UID]*podRuntime{}
	k.static = map[string]*staticPod{}
	k.staticRunning = map[string]*runningStaticPod{}
	k.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	for _, r := range runtimes {
		r.kill()
	}
	<-done
	if m := k.EtcdMember(); stopEtcd && m != nil {
		m.Stop()
	}
	k.mu.Lock()
	k.etcdSeenRunning, k.etcdRetryAt = false, time.Time{}
	k.mu.Unlock()
	// /run is a tmpfs: a machine that is off runs no container.
	_ = k.writeContainers("")
}

func (k *FakeKubelet) registerNode(ctx context.Context) error {
	k.mu.Lock()
	registered := k.registered
	k.mu.Unlock()
	labels := map[string]string{
		"kubernetes.io/hostname": k.Node, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
		"beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "amd64", "node.openshift.io/os_id": "rhcos",
	}
	var taints []corev1.Taint
	if k.Master {
		labels["node-role.kubernetes.io/master"] = ""
		labels["node-role.kubernetes.io/control-plane"] = ""
		taints = append(taints, corev1.Taint{Key: "node-role.kubernetes.io/master", Effect: corev1.TaintEffectNoSchedule})
	} else {
		labels["node-role.kubernetes.io/worker"] = ""
	}
	if !registered {
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: k.Node, Labels: labels}, Spec: corev1.NodeSpec{Taints: taints}}
		if _, err := k.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("register node %s: %w", k.Node, err)
		}
		k.mu.Lock()
		k.registered = true
		k.mu.Unlock()
	}
	return k.postReady(ctx)
}

// setNodeReady writes the node status a kubelet posts (ready) or the one the
// node lifecycle controller writes when the kubelet goes silent (not ready,
// unreachable taints).
func (k *FakeKubelet) setNodeReady(ctx context.Context, ready bool) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		node, err := k.client.CoreV1().Nodes().Get(ctx, k.Node, metav1.GetOptions{})
		if err != nil {
			return err
		}
		now := metav1.Now()
		node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: k.IP.String()}, {Type: corev1.NodeHostName, Address: k.Node}}
		node.Status.DaemonEndpoints.KubeletEndpoint.Port = kubeletPort
		node.Status.NodeInfo = corev1.NodeSystemInfo{KubeletVersion: kubeletVersionString, OperatingSystem: "linux", Architecture: "amd64",
			OSImage: "Red Hat Enterprise Linux CoreOS 414 (cluster-in-a-box)", ContainerRuntimeVersion: "cri-o://1.27.1", MachineID: k.Node, SystemUUID: k.Node, BootID: k.Node}
		node.Status.Capacity = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourceMemory: resource.MustParse("16Gi"), corev1.ResourcePods: resource.MustParse("250")}
		node.Status.Allocatable = node.Status.Capacity
		status, reason, msg := corev1.ConditionTrue, "KubeletReady", "kubelet is posting ready status"
		if !ready {
			status, reason, msg = corev1.ConditionUnknown, "NodeStatusUnknown", "Kubelet stopped posting node status."
		}
		conds := []corev1.NodeCondition{
			{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientMemory"},
			{Type: corev1.NodeDiskPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasNoDiskPressure"},
			{Type: corev1.NodePIDPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientPID"},
			{Type: corev1.NodeReady, Status: status, Reason: reason, Message: msg},
		}
		for i := range conds {
			conds[i].LastHeartbeatTime, conds[i].LastTransitionTime = now, now
			for _, old := range node.Status.Conditions {
				if old.Type == conds[i].Type && old.Status == conds[i].Status {
					conds[i].LastTransitionTime = old.LastTransitionTime
				}
			}
		}
		node.Status.Conditions = conds
		updated, err := k.client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
		if err != nil {
			return err
		}
		var taints []corev1.Taint
		for _, t := range updated.Spec.Taints {
			if t.Key != corev1.TaintNodeUnreachable {
				taints = append(taints, t)
			}
		}
		if !ready {
			taints = append(taints,
				corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoSchedule, TimeAdded: &now},
				corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoExecute, TimeAdded: &now})
		}
		updated.Spec.Taints = taints
		_, err = k.client.CoreV1().Nodes().Update(ctx, updated, metav1.UpdateOptions{})
		return err
	})
}
