package box

import (
	"context"
	"encoding/json"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// What the etcd operator's cert signer records on the secrets it issues in
// openshift-etcd, by release (read from cluster-etcd-operator's
// etcdcertsigner and tlshelpers of each release branch):
//
//   - from 4.16 it issues them through library-go's certrotation, which
//     records the validity and issuer (auth.openshift.io/certificate-not-
//     before, -not-after, -issuer) and the owning component, on the client
//     certificate and every member's peer, serving and metrics one;
//   - from 4.8 to 4.15 it records only the node's UID
//     (etcd-operator.alpha.openshift.io/cert-secret-node-uid, so that a
//     node deleted and added again under the same name gets new
//     certificates) and renews a member's certificate once less than a
//     fifth of its validity is left; its validity annotations were still a
//     TODO, and etcd-client is the installer's, which nothing rotates;
//   - 4.5 records nothing and only issues what is missing.
const (
	etcdNodeUIDAnnotation  = "etcd-operator.alpha.openshift.io/cert-secret-node-uid"
	owningComponent        = "openshift.io/owning-component"
	etcdCertrotationMinor  = 16
	etcdNodeUIDFirstMinor  = 8
	certDescriptionComment = "openshift.io/description"
)

// etcdSecretAnnotations are the annotations a new openshift-etcd secret
// holding ck carries on the box's release (the node UID is added by the
// cert signer once the node exists: reconcileEtcdNodeUIDs).
func (b *Box) etcdSecretAnnotations(ck *CertKey, description string) map[string]string {
	if minorOf(b.opts.Version) < etcdCertrotationMinor {
		return nil
	}
	return map[string]string{
		CertNotBeforeAnnotation: ck.Cert.NotBefore.UTC().Format(time.RFC3339),
		CertNotAfterAnnotation:  ck.Cert.NotAfter.UTC().Format(time.RFC3339),
		certIssuerAnnotation:    ck.Cert.Issuer.CommonName,
		owningComponent:         "etcd",
		certDescriptionComment:  description,
	}
}

// reconcileEtcdNodeUIDs is the cert signer of 4.8 to 4.15 keeping each
// member secret's node UID annotation that of its node.
func (o *etcdOperator) reconcileEtcdNodeUIDs(ctx context.Context, nodes []*corev1.Node, secrets map[string]*corev1.Secret) {
	minor := minorOf(o.b.opts.Version)
	if minor < etcdNodeUIDFirstMinor || minor >= etcdCertrotationMinor {
		return
	}
	for _, node := range nodes {
		for _, kind := range etcdCertKinds {
			s := secrets["etcd-"+kind+"-"+node.Name]
			if s == nil || s.Annotations[etcdNodeUIDAnnotation] == string(node.UID) {
				continue
			}
			patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{etcdNodeUIDAnnotation: string(node.UID)}}})
			if _, err := o.b.Kube.CoreV1().Secrets("openshift-etcd").Patch(ctx, s.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil && ctx.Err() == nil {
				klogf("etcd operator: annotate secret %s: %v", s.Name, err)
			}
		}
	}
}
