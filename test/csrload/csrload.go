// Package csrload creates, through a live apiserver, what the CSR tests and
// benchmarks need in bulk: Nodes and Machines for the hosts of a corpus
// (csrtest), the CSRs of its cases as their own identities, and the RBAC
// that lets those identities ask.
package csrload

import (
	"context"
	"fmt"
	"time"

	machineclient "github.com/openshift/client-go/machine/clientset/versioned"
	"golang.org/x/sync/errgroup"
	certificatesv1 "k8s.io/api/certificates/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"

	"github.com/oc-recover/oc-recover/pkg/csr/csrtest"
)

// GrantCSRCreation lets every authenticated user create CSRs, as
// OpenShift's role bindings let the node-bootstrapper and the nodes: the
// identities of a corpus must reach the CSR checks, not be stopped by RBAC.
func GrantCSRCreation(ctx context.Context, kube kubernetes.Interface) error {
	const name = "csrtest-create-csrs"
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: []rbacv1.PolicyRule{{
		APIGroups: []string{"certificates.k8s.io"}, Resources: []string{"certificatesigningrequests"}, Verbs: []string{"create", "get", "list"}}}}
	if _, err := kube.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: "system:authenticated"}}}
	if _, err := kube.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return nil
}

// CreateNodes creates a Node object (no kubelet) for every host, Ready or
// not, with the addresses a kubelet reports.
func CreateNodes(ctx context.Context, kube kubernetes.Interface, hosts []csrtest.Host, ready bool, workers int) error {
	return parallel(len(hosts), workers, func(i int) error {
		n := hosts[i].Node(ready)
		created, err := kube.CoreV1().Nodes().Create(ctx, &n, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("create node %s: %w", n.Name, err)
		}
		created.Status = n.Status
		if _, err := kube.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("node %s status: %w", n.Name, err)
		}
		return nil
	})
}

// CreateMachines creates a Machine for every host, with or without a
// nodeRef, with the host's addresses in its status.
func CreateMachines(ctx context.Context, machines machineclient.Interface, hosts []csrtest.Host, nodeRef bool, workers int) error {
	return parallel(len(hosts), workers, func(i int) error {
		m := hosts[i].Machine(nodeRef)
		api := machines.MachineV1beta1().Machines(m.Namespace)
		created, err := api.Create(ctx, &m, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("create machine %s: %w", m.Name, err)
		}
		created.Status = m.Status
		if _, err := api.UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("machine %s status: %w", m.Name, err)
		}
		return nil
	})
}

// SetNodeReady sets the Ready condition of node name.
func SetNodeReady(ctx context.Context, kube kubernetes.Interface, name string, ready bool) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		want := csrtest.Host{Name: name}.Node(ready).Status.Conditions[0]
		found := false
		for i := range n.Status.Conditions {
			if n.Status.Conditions[i].Type == want.Type {
				n.Status.Conditions[i].Status, found = want.Status, true
			}
		}
		if !found {
			n.Status.Conditions = append(n.Status.Conditions, want)
		}
		_, err = kube.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
		return err
	})
}

// Create creates cases through the API as their own identities: admin (a
// cluster-admin config) impersonates each, so the apiserver records
// spec.username and spec.groups itself, as for a real node or
// bootstrapper. The Older cases go first, the others more than a second
// later (creation timestamps count in seconds). It returns the CSRs' names,
// in the order of cases, and fails if the apiserver recorded another
// identity than the case's.
func Create(ctx context.Context, admin *rest.Config, cases []csrtest.Case, workers int) ([]string, error) {
	clients := map[string]kubernetes.Interface{}
	for _, c := range cases {
		key := identityKey(c.Identity)
		if clients[key] != nil {
			continue
		}
		cfg := rest.CopyConfig(admin)
		cfg.QPS, cfg.Burst = 5000, 5000
		cfg.Impersonate = rest.ImpersonationConfig{UserName: c.Identity.User, Groups: c.Identity.Groups}
		kube, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return nil, err
		}
		clients[key] = kube
	}
	names := make([]string, len(cases))
	var older, newer []int
	for i, c := range cases {
		if c.Older {
			older = append(older, i)
		} else {
			newer = append(newer, i)
		}
	}
	create := func(batch []int) error {
		return parallel(len(batch), workers, func(j int) error {
			i := batch[j]
			c := cases[i]
			obj := &certificatesv1.CertificateSigningRequest{
				ObjectMeta: metav1.ObjectMeta{GenerateName: "csr-"},
				Spec:       certificatesv1.CertificateSigningRequestSpec{Request: c.Request, SignerName: c.Signer, Usages: c.Usages},
			}
			created, err := clients[identityKey(c.Identity)].CertificatesV1().CertificateSigningRequests().Create(ctx, obj, metav1.CreateOptions{})
			if err != nil {
				return fmt.Errorf("create a %s CSR as %s: %w", c.Kind, c.Identity.User, err)
			}
			if created.Spec.Username != c.Identity.User || !sets.New(created.Spec.Groups...).Equal(sets.New(c.Identity.Groups...)) {
				return fmt.Errorf("the apiserver recorded %s %v for a %s CSR, not %s %v", created.Spec.Username, created.Spec.Groups, c.Kind, c.Identity.User, c.Identity.Groups)
			}
			names[i] = created.Name
			return nil
		})
	}
	if err := create(older); err != nil {
		return nil, err
	}
	if len(older) > 0 {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(1100 * time.Millisecond):
		}
	}
	if err := create(newer); err != nil {
		return nil, err
	}
	return names, nil
}

func identityKey(id csrtest.Identity) string { return fmt.Sprintf("%s%q", id.User, id.Groups) }

// parallel runs do(0..n-1), at most workers at a time, and returns the
// first error.
func parallel(n, workers int, do func(i int) error) error {
	var g errgroup.Group
	g.SetLimit(max(workers, 1))
	for i := range n {
		g.Go(func() error { return do(i) })
	}
	return g.Wait()
}
