package box

import (
	"context"
	"hash/fnv"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/utils/ptr"
)

const staticPodSyncPeriod = 150 * time.Millisecond

type staticPod struct {
	manifest *corev1.Pod
	// hash is the manifest's config hash, which the kubelet puts in its
	// mirror pod's kubernetes.io/config.mirror annotation: a mirror pod
	// with another hash is of another version of the manifest.
	hash string
}

// runningStaticPod is a static pod as the container runtime knows it.
type runningStaticPod struct {
	manifest *corev1.Pod
	started  time.Time
	etcd     etcdContainerState // of an etcd pod: how its etcd container is
}

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
		h := fnv.New64a()
		_, _ = h.Write(data)
		found[pod.Name] = &staticPod{manifest: pod, hash: strconv.FormatUint(h.Sum64(), 16)}
	}
	return found
}

// syncStaticPods starts and stops the static pods' containers (the etcd
// member) to match the manifests directory.
func (k *FakeKubelet) syncStaticPods() {
	desired := k.readManifests()
	k.mu.Lock()
	if _, ok := desired["etcd"]; !ok && k.static["etcd"] != nil && k.unstoppableEtcd.Load() {
		desired["etcd"] = k.static["etcd"] // its containers ignore the stop
	}
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
		if name == "kube-apiserver" && k.crashingKubeAPIServer.Load() {
			k.mu.Lock()
			if k.staticRunning[name] != nil {
				k.journal(`"Probe failed" probeType="Liveness" pod="%s/%s-%s": container kube-apiserver exited (1), back-off restarting it`, sp.manifest.Namespace, name, k.Node)
			}
			delete(k.staticRunning, name)
			k.mu.Unlock()
			continue
		}
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
	if existing != nil && existing.Annotations[mirrorPodAnnotation] != sp.hash {
		// Of another version of the manifest (the one a restored etcd
		// remembers, or the revision before): the kubelet deletes an
		// outdated mirror pod and creates it again from the manifest.
		err := k.client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0), Preconditions: &metav1.Preconditions{UID: &existing.UID}})
		if err != nil && !apierrors.IsNotFound(err) {
			// A conflict: the cache still shows the pod this deleted.
			if ctx.Err() == nil && !apierrors.IsConflict(err) {
				klogf("kubelet %s: outdated mirror pod %s/%s: %v", k.Node, ns, name, err)
			}
			return
		}
		existing = nil
	}
	if existing == nil {
		pod := sp.manifest.DeepCopy()
		pod.Name, pod.Namespace = name, ns
		pod.Spec.NodeName = k.Node
		if pod.Annotations == nil {
			pod.Annotations = map[string]string{}
		}
		pod.Annotations[mirrorPodAnnotation] = sp.hash
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
