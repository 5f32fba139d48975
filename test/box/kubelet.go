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
	// Etcd is the node's etcd member (control-plane nodes only), run while
	// etcd-pod.yaml is in the manifests directory.
	Etcd *EtcdMember

	client       kubernetes.Interface
	containerDir string

	mu         sync.Mutex
	pods       map[types.UID]*podRuntime
	static     map[string]*staticPod // by manifest pod name (etcd, kube-apiserver, ...)
	crashLoop  bool                  // fault: etcd container crash-looping
	restarts   int32
	server     *http.Server
	stopCtx    context.CancelFunc
	podLister  func() []*corev1.Pod
	loopDone   chan struct{}
	serveCert  tls.Certificate
	registered bool
}

type staticPod struct {
	manifest *corev1.Pod
	file     string
}

type podRuntime struct {
	pod        *corev1.Pod
	containers map[string]*containerProc
	cancel     context.CancelFunc
}

type containerProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	log   *logBuffer
	done  chan struct{}
	code  int
}

func newFakeKubelet(client kubernetes.Interface, node string, ip net.IP, sb *Sandbox, master bool, containerDir string, ca *CertKey) (*FakeKubelet, error) {
	serving, err := ca.Issue(CertSpec{CommonName: "system:node:" + node, Organization: []string{"system:nodes"},
		DNSNames: []string{node}, IPs: []net.IP{ip}, Usages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	if err != nil {
		return nil, err
	}
	pair, err := tls.X509KeyPair(serving.CertPEM, serving.KeyPEM)
	if err != nil {
		return nil, err
	}
	return &FakeKubelet{Node: node, IP: ip, Sandbox: sb, Master: master, client: client, containerDir: containerDir,
		pods: map[types.UID]*podRuntime{}, static: map[string]*staticPod{}, serveCert: pair}, nil
}

// Start registers the node (first time), serves the kubelet API and starts
// running pods. It is what "the machine boots" means in the box.
func (k *FakeKubelet) Start(ctx context.Context) error {
	k.mu.Lock()
	if k.stopCtx != nil {
		k.mu.Unlock()
		return nil
	}
	runCtx, cancel := context.WithCancel(context.Background())
	k.stopCtx = cancel
	k.loopDone = make(chan struct{})
	k.mu.Unlock()

	if err := k.registerNode(ctx); err != nil {
		cancel()
		return err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(k.IP.String(), strconv.Itoa(kubeletPort)))
	if err != nil {
		cancel()
		return fmt.Errorf("kubelet %s: %w", k.Node, err)
	}
	srv := &http.Server{Handler: k.routes(), TLSConfig: &tls.Config{Certificates: []tls.Certificate{k.serveCert}}, ErrorLog: discardLogger()}
	k.mu.Lock()
	k.server = srv
	k.mu.Unlock()
	go func() { _ = srv.ServeTLS(ln, "", "") }()

	factory := informers.NewSharedInformerFactoryWithOptions(k.client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", k.Node).String()
	}))
	podInformer := factory.Core().V1().Pods().Informer()
	_, _ = podInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { k.syncPod(runCtx, obj.(*corev1.Pod)) },
		UpdateFunc: func(_, obj any) { k.syncPod(runCtx, obj.(*corev1.Pod)) },
	})
	lister := factory.Core().V1().Pods().Lister()
	k.podLister = func() []*corev1.Pod {
		pods, _ := lister.List(everything())
		return pods
	}
	factory.Start(runCtx.Done())
	factory.WaitForCacheSync(runCtx.Done())
	go k.staticPodLoop(runCtx)
	return nil
}

// Stop is the machine going down: the kubelet stops serving and every
// process it runs is killed, static pods (and so the etcd member) included.
func (k *FakeKubelet) Stop() { k.stop(true) }

// stop stops the kubelet, and the etcd member too when stopEtcd is set (the
// box's teardown stops members itself, after the apiserver).
func (k *FakeKubelet) stop(stopEtcd bool) {
	k.mu.Lock()
	cancel, srv, done := k.stopCtx, k.server, k.loopDone
	k.stopCtx, k.server = nil, nil
	runtimes := make([]*podRuntime, 0, len(k.pods))
	for _, r := range k.pods {
		runtimes = append(runtimes, r)
	}
	k.pods = map[types.UID]*podRuntime{}
	k.static = map[string]*staticPod{}
	k.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	if srv != nil {
		_ = srv.Close()
	}
	for _, r := range runtimes {
		r.kill()
	}
	<-done
	if stopEtcd && k.Etcd != nil {
		k.Etcd.Stop()
	}
}

func (k *FakeKubelet) running() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.stopCtx != nil
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
	rt := &podRuntime{pod: pod.DeepCopy(), containers: map[string]*containerProc{}, cancel: cancel}
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
				ContainerID: "cri-o://" + string(pod.UID) + "-" + c.Name,
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
		return hc
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

// killAndDelete finishes a graceful deletion the way a kubelet does: stop
// the containers, then remove the object for good.
func (k *FakeKubelet) killAndDelete(ctx context.Context, pod *corev1.Pod) {
	k.mu.Lock()
	rt := k.pods[pod.UID]
	delete(k.pods, pod.UID)
	k.mu.Unlock()
	if rt != nil {
		rt.kill()
	}
	err := k.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: ptr.To[int64](0), Preconditions: metav1.NewUIDPreconditions(string(pod.UID))})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) && ctx.Err() == nil {
		klogf("kubelet %s: delete pod %s/%s: %v", k.Node, pod.Namespace, pod.Name, err)
	}
	if rt != nil {
		_ = os.RemoveAll(filepath.Join(k.containerDir, string(pod.UID)))
	}
}

func (k *FakeKubelet) writePodStatus(ctx context.Context, pod *corev1.Pod, mutate func(*corev1.Pod)) {
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

func (k *FakeKubelet) staticPodLoop(ctx context.Context) {
	defer close(k.loopDone)
	ticker := time.NewTicker(staticPodSyncPeriod)
	defer ticker.Stop()
	for {
		k.syncStaticPods(ctx)
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
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

func (k *FakeKubelet) syncStaticPods(ctx context.Context) {
	desired := k.readManifests()
	k.mu.Lock()
	var removed []string
	for name := range k.static {
		if _, ok := desired[name]; !ok {
			removed = append(removed, name)
		}
	}
	k.static = desired
	crash := k.crashLoop
	k.mu.Unlock()

	for _, name := range removed {
		if name == "etcd" && k.Etcd != nil {
			k.Etcd.Stop()
		}
		mirror := name + "-" + k.Node
		for _, p := range k.podLister() {
			if p.Name == mirror {
				_ = k.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
			}
		}
	}
	names := make([]string, 0, len(desired))
	for n := range desired {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		sp := desired[name]
		healthy := true
		if name == "etcd" && k.Etcd != nil {
			if crash {
				k.Etcd.Stop()
				healthy = false
			} else if !k.Etcd.Running() {
				if err := k.Etcd.Start(); err != nil {
					klogf("kubelet %s: %v", k.Node, err)
					healthy = false
				}
			}
		}
		k.ensureMirrorPod(ctx, sp, healthy)
	}
}

func (k *FakeKubelet) ensureMirrorPod(ctx context.Context, sp *staticPod, healthy bool) {
	name := sp.manifest.Name + "-" + k.Node
	ns := sp.manifest.Namespace
	if ns == "" {
		ns = "default"
	}
	var existing *corev1.Pod
	for _, p := range k.podLister() {
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
	want := k.staticPodStatus(existing, healthy)
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
// CrashLoopBackOff after an Error exit.
func (k *FakeKubelet) staticPodStatus(pod *corev1.Pod, healthy bool) corev1.PodStatus {
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
	k.mu.Unlock()
	prev := map[string]corev1.ContainerStatus{}
	for _, cs := range pod.Status.ContainerStatuses {
		prev[cs.Name] = cs
	}
	st.ContainerStatuses = nil
	for _, c := range pod.Spec.Containers {
		cs := corev1.ContainerStatus{Name: c.Name, Image: c.Image, ImageID: c.Image, Ready: true, Started: ptr.To(true),
			ContainerID: "cri-o://" + k.Node + "-" + pod.Name + "-" + c.Name,
			State:       corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: *st.StartTime}}}
		if old, ok := prev[c.Name]; ok && old.State.Running != nil && healthy {
			cs.State = old.State
		}
		if c.Name == "etcd" && pod.Labels["app"] == "etcd" {
			cs.RestartCount = restarts
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
	for _, p := range k.podLister() {
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
