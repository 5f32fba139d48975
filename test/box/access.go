package box

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// EtcdClient connects to the box's etcd members directly (not through the
// API), with the etcd-client identity: for tests and benchmarks that set up
// or inspect data underneath the apiserver.
func (b *Box) EtcdClient() (*clientv3.Client, error) {
	return b.etcdPKI.newEtcdClient(b.etcdEndpoints()...)
}

// EtcdClientFor connects to one member's client URL only: a linearizable
// read through it tells whether that member is healthy, as etcdctl
// endpoint health does.
func (b *Box) EtcdClientFor(url string) (*clientv3.Client, error) {
	return b.etcdPKI.newEtcdClient(url)
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
