package box

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/util/retry"
	"k8s.io/kubelet/pkg/cri/streaming/portforward"
	remotecommandserver "k8s.io/kubelet/pkg/cri/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"
	"k8s.io/utils/ptr"
)

const (
	kubeletPort          = 10250
	mirrorPodAnnotation  = "kubernetes.io/config.mirror"
	streamIdleTimeout    = 4 * time.Hour
	streamCreateTimeout  = 30 * time.Second
	staticPodSyncPeriod  = 150 * time.Millisecond
	kubeletVersionString = "v1.27.6+f67aeb3"
)

// FakeKubelet stands in for a node's kubelet: it registers the Node, runs the
// pods bound to it as processes in the node's sandbox, runs static pods from
// the sandbox's manifests directory, and serves exec, attach, port-forward and
// logs to the real apiserver.
type FakeKubelet struct {
	Node    string
	IP      net.IP
	Sandbox *Sandbox
	Master  bool

	client       kubernetes.Interface
	containerDir string

	// lifecycle serialises booting, power-off and the service's start and
	// stop, which the host agent and the box's faults may ask for at once.
	lifecycle sync.Mutex

	mu     sync.Mutex
	pods   map[types.UID]*podRuntime
	static map[string]*staticPod // by manifest pod name (etcd, kube-apiserver, ...)
	// staticRunning are the static pods whose containers run. A pod whose
	// manifest went away stays here until its containers (the etcd member)
	// have stopped, so that crictl never reports them gone too early.
	staticRunning map[string]*runningStaticPod
	// etcd is the node's etcd member (control-plane nodes only), run while
	// etcd-pod.yaml is in the manifests directory.
	etcd *EtcdMember
	// etcdSeenRunning: the member ran when last looked at, so finding it
	// stopped means it exited by itself (removed from its cluster).
	etcdSeenRunning bool
	// etcdRetryAt is when a failed etcd container is started again.
	etcdRetryAt time.Time
	restarts    int32
	serveCert   tls.Certificate
	registered  bool

	// config reaches the API as the box's loopback user, whom the kubelet
	// impersonates to ask for certificates as the node-bootstrapper or as
	// the node itself (certs.go).
	config *rest.Config
	// csrSigner signs the kubelet's certificates once their CSRs are
	// approved, as kube-controller-manager's CSR signer does.
	csrSigner *CertKey
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
	// its node marked NotReady, or connected.
	silent chan struct{}

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
	informers     informers.SharedInformerFactory
	podLister     func() []*corev1.Pod
	loopDone      chan struct{}
}

type staticPod struct {
	manifest *corev1.Pod
	file     string
}

// runningStaticPod is a static pod as the container runtime knows it.
type runningStaticPod struct {
	manifest *corev1.Pod
	started  time.Time
	etcd     etcdContainerState // of an etcd pod: how its etcd container is
}

// etcdContainerState is how the etcd container of an etcd static pod is.
type etcdContainerState int

const (
	// etcdRunning: the member runs.
	etcdRunning etcdContainerState = iota
	// etcdAwaitingMembership: the container runs but the member does not
	// yet: on an empty data dir it waits until the etcd operator has added
	// it to the cluster, as the real pod's discovery step does. Not ready.
	etcdAwaitingMembership
	// etcdFailing: the container exits and is restarted with back-off
	// (crash loop, a member removed from its cluster, a start error).
	etcdFailing
)

// etcdRestartBackOff is how long a failed etcd container waits before the
// kubelet starts it again.
const etcdRestartBackOff = 2 * time.Second

type podRuntime struct {
	pod        *corev1.Pod
	containers map[string]*containerProc
	// ctx ends when the pod's containers are killed; execs into the pod
	// die with it, as processes in a container's namespaces do.
	ctx     context.Context
	cancel  context.CancelFunc
	started time.Time
}

type containerProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	log   *logBuffer
	done  chan struct{}
	code  int
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
// background (background set, or the certificates expired) it runs the
// static pods at once and connects when it can (connectInBackground).
func (k *FakeKubelet) startService(ctx context.Context, background bool) error {
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

// connect registers the node Ready, serves the kubelet API and watches the
// pods bound to the node.
func (k *FakeKubelet) connect(ctx, serviceCtx, runtimeCtx context.Context) error {
	if err := k.registerNode(ctx); err != nil {
		return err
	}
	k.journal(`"Successfully registered node" node=%q`, k.Node)
	ln, err := net.Listen("tcp", net.JoinHostPort(k.IP.String(), strconv.Itoa(kubeletPort)))
	if err != nil {
		return fmt.Errorf("kubelet %s: %w", k.Node, err)
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

// killOrphans stops the containers of pods that were removed from the API
// while the kubelet service was down, as a starting kubelet's housekeeping
// does.
func (k *FakeKubelet) killOrphans() {
	known := map[types.UID]bool{}
	for _, p := range k.listPods() {
		known[p.UID] = true
	}
	k.mu.Lock()
	var orphans []types.UID
	var runtimes []*podRuntime
	for uid, rt := range k.pods {
		if !known[uid] {
			orphans = append(orphans, uid)
			runtimes = append(runtimes, rt)
			delete(k.pods, uid)
		}
	}
	k.mu.Unlock()
	for i, rt := range runtimes {
		rt.kill()
		_ = os.RemoveAll(filepath.Join(k.containerDir, string(orphans[i])))
	}
}

func (k *FakeKubelet) listPods() []*corev1.Pod {
	k.mu.Lock()
	list := k.podLister
	k.mu.Unlock()
	if list == nil {
		return nil
	}
	return list()
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
	return k.setNodeReady(ctx, true)
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

// syncPod is the kubelet's reaction to a pod bound to this node.
func (k *FakeKubelet) syncPod(ctx context.Context, pod *corev1.Pod) {
	if _, mirror := pod.Annotations[mirrorPodAnnotation]; mirror {
		return
	}
	if pod.DeletionTimestamp != nil {
		go k.killAndDelete(ctx, pod)
		return
	}
	if pod.Status.Phase != "" && pod.Status.Phase != corev1.PodPending {
		return
	}
	k.mu.Lock()
	if _, started := k.pods[pod.UID]; started {
		k.mu.Unlock()
		return
	}
	podCtx, cancel := context.WithCancel(ctx)
	rt := &podRuntime{pod: pod.DeepCopy(), containers: map[string]*containerProc{}, ctx: podCtx, cancel: cancel, started: time.Now()}
	k.pods[pod.UID] = rt
	k.mu.Unlock()
	go k.runPod(podCtx, rt)
}

func (k *FakeKubelet) runPod(ctx context.Context, rt *podRuntime) {
	pod := rt.pod
	start := metav1.Now()
	var startErr error
	for _, c := range pod.Spec.Containers {
		argv := append(append([]string{}, c.Command...), c.Args...)
		if len(argv) == 0 {
			argv = []string{"/bin/sh"} // the tools image's default entrypoint
		}
		proc, err := k.startProcess(ctx, pod, c, argv)
		if err != nil {
			startErr = fmt.Errorf("container %s: %w", c.Name, err)
			break
		}
		k.mu.Lock()
		rt.containers[c.Name] = proc
		k.mu.Unlock()
	}
	if startErr != nil {
		k.writePodStatus(ctx, pod, func(p *corev1.Pod) {
			p.Status.Phase = corev1.PodFailed
			p.Status.Reason = "StartError"
			p.Status.Message = startErr.Error()
		})
		return
	}
	k.writePodStatus(ctx, pod, func(p *corev1.Pod) {
		p.Status.Phase = corev1.PodRunning
		p.Status.StartTime = &start
		k.setPodAddresses(p)
		p.Status.Conditions = podConditions(true)
		p.Status.ContainerStatuses = nil
		for _, c := range pod.Spec.Containers {
			p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{
				Name: c.Name, Image: c.Image, ImageID: c.Image, Ready: true, Started: ptr.To(true),
				ContainerID: "cri-o://" + podContainerID(pod.UID, c.Name),
				State:       corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: start}},
			})
		}
	})

	var deadline <-chan time.Time
	if ads := pod.Spec.ActiveDeadlineSeconds; ads != nil {
		timer := time.NewTimer(time.Duration(*ads) * time.Second)
		defer timer.Stop()
		deadline = timer.C
	}
	allDone := make(chan struct{})
	go func() {
		for _, p := range rt.containers {
			<-p.done
		}
		close(allDone)
	}()
	select {
	case <-allDone:
		k.writePodStatus(ctx, pod, func(p *corev1.Pod) {
			failed := false
			for i := range p.Status.ContainerStatuses {
				cs := &p.Status.ContainerStatuses[i]
				proc := rt.containers[cs.Name]
				reason := "Completed"
				if proc.code != 0 {
					reason, failed = "Error", true
				}
				cs.Ready = false
				cs.State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: int32(proc.code), Reason: reason, StartedAt: start, FinishedAt: metav1.Now()}}
			}
			p.Status.Phase = corev1.PodSucceeded
			if failed {
				p.Status.Phase = corev1.PodFailed
			}
			p.Status.Conditions = podConditions(false)
		})
	case <-deadline:
		rt.kill()
		k.writePodStatus(ctx, pod, func(p *corev1.Pod) {
			p.Status.Phase = corev1.PodFailed
			p.Status.Reason = "DeadlineExceeded"
			p.Status.Message = "Pod was active on the node longer than the specified deadline"
			p.Status.Conditions = podConditions(false)
		})
	case <-ctx.Done():
	}
}

func (k *FakeKubelet) setPodAddresses(p *corev1.Pod) {
	p.Status.HostIP = k.IP.String()
	p.Status.HostIPs = []corev1.HostIP{{IP: k.IP.String()}}
	p.Status.PodIP = k.IP.String()
	p.Status.PodIPs = []corev1.PodIP{{IP: k.IP.String()}}
}

func podConditions(ready bool) []corev1.PodCondition {
	now := metav1.Now()
	r := corev1.ConditionTrue
	if !ready {
		r = corev1.ConditionFalse
	}
	return []corev1.PodCondition{
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.ContainersReady, Status: r, LastTransitionTime: now},
		{Type: corev1.PodReady, Status: r, LastTransitionTime: now},
	}
}

// hostCommand says how a container's process runs: static pods (hostPath
// everything, host network) run on the host itself; other pods run in a
// container root of their own, seeing the host at a hostPath mount of "/".
func (k *FakeKubelet) hostCommand(pod *corev1.Pod, c *corev1.Container, argv []string) HostCommand {
	hc := HostCommand{Argv: argv, Dir: c.WorkingDir}
	for _, e := range c.Env {
		hc.Env = append(hc.Env, e.Name+"="+e.Value)
	}
	if _, mirror := pod.Annotations[mirrorPodAnnotation]; mirror {
		return staticPodCommand(pod, hc)
	}
	hc.ContainerRoot = filepath.Join(k.containerDir, string(pod.UID), c.Name)
	hostVolumes := map[string]bool{}
	for _, v := range pod.Spec.Volumes {
		if v.HostPath != nil && filepath.Clean(v.HostPath.Path) == "/" {
			hostVolumes[v.Name] = true
		}
	}
	for _, m := range c.VolumeMounts {
		if hostVolumes[m.Name] {
			hc.HostMountPath = m.MountPath
		}
	}
	return hc
}

func (k *FakeKubelet) startProcess(ctx context.Context, pod *corev1.Pod, c corev1.Container, argv []string) (*containerProc, error) {
	cmd, err := k.Sandbox.Command(ctx, k.hostCommand(pod, &c, argv))
	if err != nil {
		return nil, err
	}
	proc := &containerProc{cmd: cmd, log: newLogBuffer(), done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = proc.log, proc.log
	if c.Stdin {
		if proc.stdin, err = cmd.StdinPipe(); err != nil {
			return nil, err
		}
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		err := cmd.Wait()
		proc.code = exitCode(err)
		proc.log.Close()
		close(proc.done)
	}()
	return proc, nil
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ee.ExitCode() >= 0 {
			return ee.ExitCode()
		}
		return 137 // killed by a signal
	}
	return 126
}

func (r *podRuntime) kill() {
	r.cancel()
	for _, p := range r.containers {
		if p.cmd.Process != nil {
			_ = p.cmd.Cancel()
		}
	}
	for _, p := range r.containers {
		<-p.done
	}
}

// killDeleted stops the containers of a pod that no longer exists.
func (k *FakeKubelet) killDeleted(pod *corev1.Pod) {
	k.mu.Lock()
	rt := k.pods[pod.UID]
	delete(k.pods, pod.UID)
	k.mu.Unlock()
	if rt != nil {
		rt.kill()
		_ = os.RemoveAll(filepath.Join(k.containerDir, string(pod.UID)))
	}
}

// killAndDelete finishes a graceful deletion the way a kubelet does: stop
// the containers, then remove the object for good.
func (k *FakeKubelet) killAndDelete(ctx context.Context, pod *corev1.Pod) {
	k.killDeleted(pod)
	err := k.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: ptr.To[int64](0), Preconditions: metav1.NewUIDPreconditions(string(pod.UID))})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) && ctx.Err() == nil {
		klogf("kubelet %s: delete pod %s/%s: %v", k.Node, pod.Namespace, pod.Name, err)
	}
}

func (k *FakeKubelet) writePodStatus(ctx context.Context, pod *corev1.Pod, mutate func(*corev1.Pod)) {
	if !k.awaitService(ctx) {
		return
	}
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := k.client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cur.UID != pod.UID {
			return nil
		}
		mutate(cur)
		_, err = k.client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		return err
	})
	if err != nil && !apierrors.IsNotFound(err) && ctx.Err() == nil {
		klogf("kubelet %s: pod %s/%s status: %v", k.Node, pod.Namespace, pod.Name, err)
	}
}

// ---- static pods ----

func (k *FakeKubelet) manifestsDir() string {
	return filepath.Join(k.Sandbox.Root, "etc/kubernetes/manifests")
}

// staticPodLoop runs the static pods from the manifests directory, and
// beside it mirrorPodLoop reports them to the API: containers start and stop
// whether or not the API answers, as with a real kubelet, which matters
// when etcd has lost quorum.
func (k *FakeKubelet) staticPodLoop(ctx context.Context, done chan struct{}) {
	defer close(done)
	wake := make(chan struct{}, 1)
	mirrorsDone := make(chan struct{})
	go func() { defer close(mirrorsDone); k.mirrorPodLoop(ctx, wake) }()
	ticker := time.NewTicker(staticPodSyncPeriod)
	defer ticker.Stop()
	for {
		k.syncStaticPods()
		select {
		case wake <- struct{}{}:
		default:
		}
		select {
		case <-ctx.Done():
			<-mirrorsDone
			return
		case <-ticker.C:
		}
	}
}

func (k *FakeKubelet) mirrorPodLoop(ctx context.Context, wake <-chan struct{}) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-wake:
			// Without a connection to the API (a kubelet still booting or
			// waiting for its certificates) there is no one to tell.
			if k.connected() {
				k.syncMirrorPods(ctx)
			}
		}
	}
}

// connected reports whether the kubelet service talks to the API.
func (k *FakeKubelet) connected() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.serving
}

func (k *FakeKubelet) readManifests() map[string]*staticPod {
	found := map[string]*staticPod{}
	entries, _ := os.ReadDir(k.manifestsDir())
	for _, e := range entries {
		if e.IsDir() || !(strings.HasSuffix(e.Name(), ".yaml") || strings.HasSuffix(e.Name(), ".json")) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(k.manifestsDir(), e.Name()))
		if err != nil {
			continue
		}
		pod := &corev1.Pod{}
		if err := yaml.Unmarshal(data, pod); err != nil || pod.Name == "" {
			continue
		}
		found[pod.Name] = &staticPod{manifest: pod, file: e.Name()}
	}
	return found
}

// syncStaticPods starts and stops the static pods' containers (the etcd
// member) to match the manifests directory.
func (k *FakeKubelet) syncStaticPods() {
	desired := k.readManifests()
	k.mu.Lock()
	var removed []string
	for name := range k.static {
		if _, ok := desired[name]; !ok {
			removed = append(removed, name)
		}
	}
	k.static = desired
	k.mu.Unlock()

	for _, name := range removed {
		if m := k.EtcdMember(); name == "etcd" && m != nil {
			m.Stop()
			k.mu.Lock()
			k.etcdSeenRunning = false
			k.mu.Unlock()
		}
		k.mu.Lock()
		if r := k.staticRunning[name]; r != nil {
			k.journal(`"SyncLoop REMOVE" source="file" pods=["%s/%s-%s"]`, r.manifest.Namespace, name, k.Node)
		}
		delete(k.staticRunning, name)
		k.mu.Unlock()
	}
	names := make([]string, 0, len(desired))
	for n := range desired {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		sp := desired[name]
		state := etcdRunning
		if m := k.EtcdMember(); name == "etcd" && m != nil {
			state = k.syncEtcd(m)
		}
		k.mu.Lock()
		r := k.staticRunning[name]
		if r == nil {
			r = &runningStaticPod{manifest: sp.manifest, started: time.Now()}
			k.staticRunning[name] = r
			k.journal(`"SyncLoop ADD" source="file" pods=["%s/%s-%s"]`, sp.manifest.Namespace, name, k.Node)
		}
		r.etcd = state
		k.mu.Unlock()
	}
}

// SetEtcd gives the kubelet the node's etcd member, which it runs while
// etcd-pod.yaml is in the manifests directory.
func (k *FakeKubelet) SetEtcd(m *EtcdMember) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.etcd != m {
		k.etcd, k.etcdSeenRunning, k.etcdRetryAt = m, false, time.Time{}
	}
}

// EtcdMember is the node's etcd member, nil on a worker.
func (k *FakeKubelet) EtcdMember() *EtcdMember {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.etcd
}

// syncEtcd runs the etcd container of a present etcd pod: the member runs
// unless the crash-loop fault is in its data dir, it has been removed from
// the cluster (its old data is still there), or its data dir is empty and
// the etcd operator has not added it to the cluster yet.
func (k *FakeKubelet) syncEtcd(m *EtcdMember) etcdContainerState {
	if m.crashLooping() {
		m.Stop()
		k.mu.Lock()
		k.etcdSeenRunning = false
		k.mu.Unlock()
		return etcdFailing
	}
	running := m.Running()
	k.mu.Lock()
	seen, retryAt := k.etcdSeenRunning, k.etcdRetryAt
	k.etcdSeenRunning = running
	if !running && seen {
		// It exited by itself: etcd stops a member that learns it was
		// removed from its cluster.
		retryAt = time.Now().Add(etcdRestartBackOff)
		k.etcdRetryAt = retryAt
	}
	k.mu.Unlock()
	if running {
		return etcdRunning
	}
	if seen {
		klogf("kubelet %s: etcd member %s exited: %v", k.Node, m.Name, m.exitError())
		return etcdFailing
	}
	switch m.membership() {
	case memberRemoved:
		return etcdFailing
	case memberAwaitingAdmission:
		return etcdAwaitingMembership
	}
	if time.Now().Before(retryAt) {
		return etcdFailing
	}
	if err := m.Start(); err != nil {
		klogf("kubelet %s: %v", k.Node, err)
		k.mu.Lock()
		k.etcdRetryAt = time.Now().Add(etcdRestartBackOff)
		k.mu.Unlock()
		return etcdFailing
	}
	k.mu.Lock()
	k.etcdSeenRunning = true
	k.mu.Unlock()
	return etcdRunning
}

// syncMirrorPods makes the API's mirror pods match the static pods: one per
// running static pod with its status, none for a manifest that is gone.
func (k *FakeKubelet) syncMirrorPods(ctx context.Context) {
	k.mu.Lock()
	static := make(map[string]*staticPod, len(k.static))
	states := map[string]etcdContainerState{}
	for name, sp := range k.static {
		if r := k.staticRunning[name]; r != nil {
			static[name], states[name] = sp, r.etcd
		}
	}
	k.mu.Unlock()
	for _, p := range k.listPods() {
		if _, mirror := p.Annotations[mirrorPodAnnotation]; !mirror || p.DeletionTimestamp != nil {
			continue
		}
		if _, ok := static[strings.TrimSuffix(p.Name, "-"+k.Node)]; !ok {
			_ = k.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
		}
	}
	names := make([]string, 0, len(static))
	for n := range static {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		k.ensureMirrorPod(ctx, static[name], states[name])
	}
}

func (k *FakeKubelet) ensureMirrorPod(ctx context.Context, sp *staticPod, state etcdContainerState) {
	name := sp.manifest.Name + "-" + k.Node
	ns := sp.manifest.Namespace
	if ns == "" {
		ns = "default"
	}
	var existing *corev1.Pod
	for _, p := range k.listPods() {
		if p.Name == name && p.Namespace == ns {
			existing = p
		}
	}
	if existing == nil {
		pod := sp.manifest.DeepCopy()
		pod.Name, pod.Namespace = name, ns
		pod.Spec.NodeName = k.Node
		if pod.Annotations == nil {
			pod.Annotations = map[string]string{}
		}
		pod.Annotations[mirrorPodAnnotation] = "box-" + sp.file
		pod.Annotations["kubernetes.io/config.source"] = "file"
		pod.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: k.Node, UID: k.nodeUID(ctx), Controller: ptr.To(true)}}
		created, err := k.client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
		if err != nil {
			if !apierrors.IsAlreadyExists(err) && ctx.Err() == nil {
				klogf("kubelet %s: mirror pod %s/%s: %v", k.Node, ns, name, err)
			}
			return
		}
		existing = created
	}
	want := k.staticPodStatus(existing, state)
	if staticStatusEqual(existing.Status, want) {
		return
	}
	k.writePodStatus(ctx, existing, func(p *corev1.Pod) { p.Status = want })
}

func (k *FakeKubelet) nodeUID(ctx context.Context) types.UID {
	n, err := k.client.CoreV1().Nodes().Get(ctx, k.Node, metav1.GetOptions{})
	if err != nil {
		return ""
	}
	return n.UID
}

// staticPodStatus is what a kubelet reports for a static pod: all containers
// running, or for a crash-looping etcd the etcd container waiting in
// CrashLoopBackOff after an Error exit, or for an etcd awaiting its
// membership the etcd container running but not ready.
func (k *FakeKubelet) staticPodStatus(pod *corev1.Pod, state etcdContainerState) corev1.PodStatus {
	healthy := state != etcdFailing
	st := pod.Status.DeepCopy()
	st.Phase = corev1.PodRunning
	st.HostIP, st.PodIP = k.IP.String(), k.IP.String()
	st.HostIPs, st.PodIPs = []corev1.HostIP{{IP: k.IP.String()}}, []corev1.PodIP{{IP: k.IP.String()}}
	if st.StartTime == nil {
		now := metav1.Now()
		st.StartTime = &now
	}
	k.mu.Lock()
	if !healthy {
		k.restarts++
	}
	restarts := k.restarts
	podID := ""
	if r := k.staticRunning[strings.TrimSuffix(pod.Name, "-"+k.Node)]; r != nil {
		podID = k.staticPodID(r)
	}
	k.mu.Unlock()
	prev := map[string]corev1.ContainerStatus{}
	for _, cs := range pod.Status.ContainerStatuses {
		prev[cs.Name] = cs
	}
	st.ContainerStatuses = nil
	for _, c := range pod.Spec.Containers {
		cs := corev1.ContainerStatus{Name: c.Name, Image: c.Image, ImageID: c.Image, Ready: !k.apiServerStopped(c.Name), Started: ptr.To(true),
			ContainerID: "cri-o://" + runtimeID(podID, c.Name, "0"),
			State:       corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: *st.StartTime}}}
		if old, ok := prev[c.Name]; ok && old.State.Running != nil && healthy {
			cs.State = old.State
		}
		if c.Name == "etcd" && pod.Labels["app"] == "etcd" {
			cs.RestartCount = restarts
			cs.ContainerID = "cri-o://" + runtimeID(podID, c.Name, strconv.Itoa(int(restarts)))
			if state == etcdAwaitingMembership {
				cs.Ready = false
			}
			if !healthy {
				cs.Ready, cs.Started = false, ptr.To(false)
				cs.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff",
					Message: "back-off 5m0s restarting failed container=etcd pod=" + pod.Name}}
				cs.LastTerminationState = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error"}}
			}
		}
		st.ContainerStatuses = append(st.ContainerStatuses, cs)
	}
	allReady := true
	for _, cs := range st.ContainerStatuses {
		allReady = allReady && cs.Ready
	}
	st.Conditions = podConditions(allReady)
	for i := range st.Conditions {
		for _, old := range pod.Status.Conditions {
			if old.Type == st.Conditions[i].Type && old.Status == st.Conditions[i].Status {
				st.Conditions[i].LastTransitionTime = old.LastTransitionTime
			}
		}
	}
	return *st
}

// staticStatusEqual compares what matters so that an unchanged static pod
// costs no write.
func staticStatusEqual(a, b corev1.PodStatus) bool {
	if a.Phase != b.Phase || a.PodIP != b.PodIP || len(a.ContainerStatuses) != len(b.ContainerStatuses) {
		return false
	}
	for i := range a.ContainerStatuses {
		x, y := a.ContainerStatuses[i], b.ContainerStatuses[i]
		if x.Name != y.Name || x.Ready != y.Ready || x.RestartCount != y.RestartCount ||
			(x.State.Running == nil) != (y.State.Running == nil) || (x.State.Waiting == nil) != (y.State.Waiting == nil) {
			return false
		}
	}
	return true
}

// ---- kubelet API ----

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
