package box

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// namespaceController does what kube-controller-manager's namespace
// controller does for a deleted namespace: delete what is in it (pods, the
// only thing the box's workloads create, plus config maps and secrets) and
// then finalize the namespace so that it goes away. Without it a deleted
// namespace would stay Terminating for ever.
func (b *Box) namespaceController(ctx context.Context) {
	everyRound(ctx, 200*time.Millisecond, func(ctx context.Context) {
		list, err := b.Kube.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
		if err != nil {
			return
		}
		for i := range list.Items {
			if ns := &list.Items[i]; ns.DeletionTimestamp != nil {
				b.finalizeNamespace(ctx, ns)
			}
		}
	})
}

func (b *Box) finalizeNamespace(ctx context.Context, ns *corev1.Namespace) {
	core := b.Kube.CoreV1()
	pods, err := core.Pods(ns.Name).List(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			_ = core.Pods(ns.Name).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](30)})
		}
	}
	if len(pods.Items) > 0 {
		return // the kubelets finish the pods' deletion; look again later
	}
	_ = core.Secrets(ns.Name).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
	_ = core.ConfigMaps(ns.Name).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
	ns.Spec.Finalizers = nil
	_, _ = core.Namespaces().Finalize(ctx, ns, metav1.UpdateOptions{})
}
