package box

import (
	"fmt"
	"os"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// The box has no pod network: a pod's processes share their node's
// network, where every node has a loopback address of its own. That is
// wrong for a pod that serves on its own loopback, as the platform
// Prometheus does (127.0.0.1:9090, which only an exec into the pod
// reaches): on the test machine every such pod would share one
// 127.0.0.1, with each other, with parallel boxes and with whatever else
// runs there. So the pods of openshift-monitoring that are not on the host
// network get a network namespace of their own holding only a loopback,
// made by their first container's process and joined by their other
// containers and by every exec into them, as a pod's containers share its
// sandbox's network under CRI-O.

// ownNetwork says whether pod's processes run in a network of the pod's
// own.
func ownNetwork(pod *corev1.Pod) bool {
	return pod.Namespace == monitoringNamespace && !pod.Spec.HostNetwork
}

// podNetwork is the network a new process of pod runs in (HostCommand's
// Network): the host's for most pods; for a pod with a network of its
// own, the namespace its first running container's process holds, or a
// new one when none runs yet (the pod's first container is starting).
func (k *FakeKubelet) podNetwork(pod *corev1.Pod) string {
	if !ownNetwork(pod) {
		return ""
	}
	if pid, _ := k.containerProcess(pod.UID, ""); pid != 0 {
		return fmt.Sprintf("/proc/%d/ns/net", pid)
	}
	return NewNetwork
}

// containerProcess is the process id of a running container of the pod
// (container "" is the pod's first one that has a process) and a channel
// closed when it has exited; 0 when it does not run on this node.
func (k *FakeKubelet) containerProcess(uid types.UID, container string) (int, <-chan struct{}) {
	k.mu.Lock()
	defer k.mu.Unlock()
	rt := k.pods[uid]
	if rt == nil {
		return 0, nil
	}
	for _, c := range rt.pod.Spec.Containers {
		p := rt.containers[c.Name]
		if (container != "" && c.Name != container) || p == nil || p.cmd.Process == nil {
			continue
		}
		select {
		case <-p.done:
			continue
		default:
		}
		return p.cmd.Process.Pid, p.done
	}
	return 0, nil
}

// ownNamespace says whether the network namespace at path is another than
// the test process's: right after a container's process started, before
// it has unshared, it is still the machine's.
func ownNamespace(path string) bool {
	theirs, err := os.Readlink(path)
	if err != nil {
		return false
	}
	ours, err := os.Readlink("/proc/self/ns/net")
	return err == nil && theirs != ours
}

// restartsAfterReboot says whether a pod the API shows running, whose
// containers this node's runtime does not run, is started again: after
// the machine rebooted, a kubelet starts again the containers of the pods
// bound to it that should always run.
func restartsAfterReboot(pod *corev1.Pod) bool {
	return pod.Status.Phase == corev1.PodRunning &&
		(pod.Spec.RestartPolicy == corev1.RestartPolicyAlways || pod.Spec.RestartPolicy == "")
}
