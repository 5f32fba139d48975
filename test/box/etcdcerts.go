package box

import (
	"context"
	"net"
	"os"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// signCerts is the etcd operator's cert signer: every control-plane Node
// (ready or not, as the operator lists them) has its etcd-peer-,
// etcd-serving- and etcd-serving-metrics-<node> secrets. A missing one is
// issued (a deleted one again, with a new certificate), and the node's
// certificates on the control-plane hosts and of its member are replaced, so
// that the member's next start uses them. Secrets of a Node that is gone
// stay: the operator's cleaner waits three days before it deletes them.
func (o *etcdOperator) signCerts(ctx context.Context) {
	nodes, err := o.b.controlPlaneNodes()
	if err != nil || len(nodes) == 0 {
		return
	}
	secrets := o.b.Kube.CoreV1().Secrets("openshift-etcd")
	list, err := secrets.List(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	have := map[string]bool{}
	byName := map[string]*corev1.Secret{}
	for i, s := range list.Items {
		have[s.Name] = true
		byName[s.Name] = &list.Items[i]
	}
	o.reconcileEtcdNodeUIDs(ctx, nodes, byName)
	for _, node := range nodes {
		ip := o.b.nodeIP(node)
		if ip == nil {
			continue
		}
		issued := false
		for _, kind := range etcdCertKinds {
			name := "etcd-" + kind + "-" + node.Name
			if have[name] {
				continue
			}
			ck, err := o.b.etcdPKI.secretCert(kind, node.Name, ip)
			if err != nil {
				klogf("etcd operator: issue %s: %v", name, err)
				continue
			}
			if _, err := secrets.Create(ctx, o.b.etcdTLSSecret(name, ck), metav1.CreateOptions{}); err != nil {
				if !apierrors.IsAlreadyExists(err) && ctx.Err() == nil {
					klogf("etcd operator: create secret %s: %v", name, err)
				}
				continue
			}
			klogf("etcd operator: issued secret %s", name)
			issued = true
		}
		if issued {
			if err := o.b.installNodeCerts(node.Name, ip); err != nil {
				klogf("etcd operator: install the certificates of %s: %v", node.Name, err)
			}
		}
	}
}

// nodeIP is a Node's address: its host's in the box, else its InternalIP.
func (b *Box) nodeIP(node *corev1.Node) net.IP {
	if n := b.Node(node.Name); n != nil {
		return n.IP
	}
	for _, a := range node.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			return net.ParseIP(a.Address)
		}
	}
	return nil
}

// installNodeCerts puts a node's current certificates where they are used:
// every control-plane host's etcd-all-certs directory, and the node's
// member's own certificate directory.
func (b *Box) installNodeCerts(node string, ip net.IP) error {
	for _, h := range b.masters() {
		if _, err := os.Stat(filepath.Join(h.Sandbox.Root, etcdCertsDir, "secrets/etcd-all-certs")); err != nil {
			continue
		}
		if err := b.writeHostNodeCerts(h.Sandbox.Root, node, ip); err != nil {
			return err
		}
	}
	if n := b.Node(node); n != nil && n.Etcd != nil {
		return b.etcdPKI.writeMemberCerts(n.Etcd.certDir, node, ip)
	}
	return nil
}
