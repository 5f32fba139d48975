package health

import (
	"context"
	"sync"

	configv1 "github.com/openshift/api/config/v1"
	machinev1beta1 "github.com/openshift/api/machine/v1beta1"
	operatorv1 "github.com/openshift/api/operator/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/oc-recover/oc-recover/pkg/openshift"
)

// MachineAPINamespace is where the Machine API keeps Machines and the
// control-plane machine set.
const MachineAPINamespace = "openshift-machine-api"

// cluster reads the cluster for the checks; what several areas need is
// read once, by whichever asks first.
type cluster struct {
	Clients
	opts Options
	// readyz is the answer to the first request, which every run asks.
	readyz readyzAnswer

	nodes    once[[]corev1.Node]
	machines once[[]machinev1beta1.Machine]
	etcdCR   once[*operatorv1.Etcd]
	version  once[*configv1.ClusterVersion]
}

// once is a value read at most once, shared by the areas that read it
// in parallel.
type once[T any] struct {
	o   sync.Once
	v   T
	err error
}

func (x *once[T]) get(read func() (T, error)) (T, error) {
	x.o.Do(func() { x.v, x.err = read() })
	return x.v, x.err
}

// Nodes are every node, one list whatever the cluster's size.
func (c *cluster) Nodes(ctx context.Context) ([]corev1.Node, error) {
	return c.nodes.get(func() ([]corev1.Node, error) {
		list, err := c.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, err
		}
		return list.Items, nil
	})
}

// controlPlane is the names of the control-plane nodes.
func controlPlane(nodes []corev1.Node) []string {
	var out []string
	for i := range nodes {
		if openshift.IsControlPlane(&nodes[i]) {
			out = append(out, nodes[i].Name)
		}
	}
	return out
}

// Machines are every Machine; none where the Machine API is not served
// (hosts an installer did not provision).
func (c *cluster) Machines(ctx context.Context) ([]machinev1beta1.Machine, error) {
	return c.machines.get(func() ([]machinev1beta1.Machine, error) {
		if c.Machine == nil {
			return nil, nil
		}
		list, err := c.Machine.MachineV1beta1().Machines(MachineAPINamespace).List(ctx, metav1.ListOptions{})
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return list.Items, nil
	})
}

// EtcdCR is etcd/cluster, the etcd operator's configuration and status.
func (c *cluster) EtcdCR(ctx context.Context) (*operatorv1.Etcd, error) {
	return c.etcdCR.get(func() (*operatorv1.Etcd, error) {
		return c.Operator.OperatorV1().Etcds().Get(ctx, "cluster", metav1.GetOptions{})
	})
}

// Version is clusterversion/version.
func (c *cluster) Version(ctx context.Context) (*configv1.ClusterVersion, error) {
	return c.version.get(func() (*configv1.ClusterVersion, error) {
		return c.Config.ConfigV1().ClusterVersions().Get(ctx, "version", metav1.GetOptions{})
	})
}

// failAll is the result of every check of ids when what they judge could
// not be read.
func failAll(err error, ids ...string) []Result {
	out := make([]Result, 0, len(ids))
	for _, id := range ids {
		out = append(out, CouldNotRun(id, err))
	}
	return out
}
