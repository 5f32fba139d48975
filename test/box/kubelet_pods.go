package box

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
)

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

// syncPod is the kubelet's reaction to a pod bound to this node.
func (k *FakeKubelet) syncPod(ctx context.Context, pod *corev1.Pod) {
	if _, mirror := pod.Annotations[mirrorPodAnnotation]; mirror {
		return
	}
	if pod.DeletionTimestamp != nil {
		go k.killAndDelete(ctx, pod)
		return
	}
	if pod.Status.Phase != "" && pod.Status.Phase != corev1.PodPending && !restartsAfterReboot(pod) {
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
	hc.Network = k.podNetwork(pod)
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
