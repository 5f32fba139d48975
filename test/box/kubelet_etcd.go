package box

import "time"

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
