package box

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
)

// The kubelets' certificates, as on OpenShift: a kubelet whose client
// certificate expired (or that lost it) asks for a new one as the
// node-bootstrapper service account, then for a serving certificate as the
// node; each CSR must be approved (by an administrator: OpenShift 4.5
// documentation, Backup and restore, chapter 4 "Restarting the cluster
// gracefully" and 5.4 "Recovering from expired control plane certificates")
// and is then signed. The node turns Ready only once both are issued.
// The CSRs are created through the API as these identities (the box's
// loopback user impersonates them), so the apiserver records the requester
// and its groups itself.
const (
	// BootstrapperUser is the node-bootstrapper service account.
	BootstrapperUser = "system:serviceaccount:openshift-machine-config-operator:node-bootstrapper"

	// KubeletSignerNamespace and KubeletSignerSecret hold the signer of the
	// certificates the kube-apiserver presents to kubelets; a cluster that
	// is down when it expires cannot start again without manual recovery.
	KubeletSignerNamespace = "openshift-kube-apiserver-operator"
	KubeletSignerSecret    = "kube-apiserver-to-kubelet-signer"
	// CertNotAfterAnnotation and CertNotBeforeAnnotation are how OpenShift's
	// cert rotation records a certificate's validity on its secret.
	CertNotAfterAnnotation  = "auth.openshift.io/certificate-not-after"
	CertNotBeforeAnnotation = "auth.openshift.io/certificate-not-before"
	certIssuerAnnotation    = "auth.openshift.io/certificate-issuer"

	// kubeletCertValidity is how long the kubelet certificates the box
	// signs are valid, as kube-controller-manager's default on OpenShift.
	kubeletCertValidity = 30 * 24 * time.Hour
	// csrPollPeriod is how often a kubelet looks at its CSR.
	csrPollPeriod = 200 * time.Millisecond
	// connectRetryPeriod is how often a booting kubelet tries the API.
	connectRetryPeriod = 500 * time.Millisecond
)

// bootstrapperGroups are the node-bootstrapper service account's groups.
var bootstrapperGroups = []string{"system:serviceaccounts", "system:serviceaccounts:openshift-machine-config-operator", "system:authenticated"}

// seedKubeletPKI creates the signer of the kubelets' certificates, the
// kube-apiserver-to-kubelet-signer secret (valid one year from the
// installation, as the installer makes it), the node-bootstrapper service
// account, and the permissions that let it and the nodes ask for
// certificates (on OpenShift the nodes' come from the Node authorizer).
func (b *Box) seedKubeletPKI(ctx context.Context) error {
	var err error
	if b.csrSigner, err = NewCA(fmt.Sprintf("kube-csr-signer_@%d", time.Now().Unix()), 365*24*time.Hour); err != nil {
		return err
	}
	installed := time.Now().Add(-b.opts.InstalledAgo).Truncate(time.Second)
	if err := b.ReplaceKubeletSigner(ctx, installed, installed.Add(365*24*time.Hour), true); err != nil {
		return err
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "node-bootstrapper", Namespace: "openshift-machine-config-operator"}}
	if _, err := b.Kube.CoreV1().ServiceAccounts(sa.Namespace).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	bindings := []*rbacv1.ClusterRoleBinding{
		{ObjectMeta: metav1.ObjectMeta{Name: "system:openshift:node-bootstrapper"},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "system:node-bootstrapper"},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa.Name, Namespace: sa.Namespace}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "box:nodes-request-certificates"},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "system:node-bootstrapper"},
			Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: "system:nodes"}}},
	}
	for _, crb := range bindings {
		if _, err := b.Kube.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
	}
	return nil
}

// ReplaceKubeletSigner replaces the kube-apiserver-to-kubelet-signer secret
// with a new certificate authority valid from notBefore to notAfter; with
// annotate, its validity is also recorded in the secret's annotations, as
// OpenShift's cert rotation does.
func (b *Box) ReplaceKubeletSigner(ctx context.Context, notBefore, notAfter time.Time, annotate bool) error {
	name := fmt.Sprintf("%s_%s@%d", KubeletSignerNamespace, KubeletSignerSecret, notBefore.Unix())
	ca, err := NewCAValidFor(name, notBefore, notAfter)
	if err != nil {
		return err
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: KubeletSignerSecret, Namespace: KubeletSignerNamespace},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{corev1.TLSCertKey: ca.CertPEM, corev1.TLSPrivateKeyKey: ca.KeyPEM},
	}
	if annotate {
		secret.Annotations = map[string]string{
			CertNotAfterAnnotation:  ca.Cert.NotAfter.UTC().Format(time.RFC3339),
			CertNotBeforeAnnotation: ca.Cert.NotBefore.UTC().Format(time.RFC3339),
			certIssuerAnnotation:    name,
		}
	}
	secrets := b.Kube.CoreV1().Secrets(KubeletSignerNamespace)
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		old, err := secrets.Get(ctx, KubeletSignerSecret, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			_, err = secrets.Create(ctx, secret, metav1.CreateOptions{})
			return err
		}
		if err != nil {
			return err
		}
		secret.ResourceVersion = old.ResourceVersion
		_, err = secrets.Update(ctx, secret, metav1.UpdateOptions{})
		return err
	})
}

// ExpireKubeletCertificates is the fault of OpenShift 4.5 documentation,
// Backup and restore, 5.4 "Recovering from expired control plane
// certificates": node's kubelet
// finds its client certificate expired. The kubelet restarts, the node turns
// NotReady, and the kubelet asks for new certificates through CSRs; it is
// Ready again once they are approved and issued.
func (b *Box) ExpireKubeletCertificates(ctx context.Context, name string) error {
	n := b.Node(name)
	if n == nil || n.Kubelet == nil {
		return fmt.Errorf("no node %q in the box", name)
	}
	n.Kubelet.ExpireCertificates()
	if n.agent != nil && !n.agent.isOn() {
		return nil // it finds out when the machine boots
	}
	return n.Kubelet.RestartService(ctx)
}

// ExpireCertificates marks the kubelet's certificates expired: its next
// start goes through CSRs.
func (k *FakeKubelet) ExpireCertificates() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.certsExpired = true
}

// awaitSilent waits until a kubelet started in the background has seen its
// node marked NotReady (or connected); it returns at once for one started
// in the foreground or stopped.
func (k *FakeKubelet) awaitSilent(ctx context.Context) error {
	k.mu.Lock()
	silent := k.silent
	k.mu.Unlock()
	if silent == nil {
		return nil
	}
	select {
	case <-silent:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("node %s: waiting for the API to mark it NotReady: %w", k.Node, ctx.Err())
	}
}

// connectInBackground is a kubelet service that started without the API:
// once the API answers, the node lifecycle controller marks the node
// NotReady (its status is from before the kubelet started; with
// Options.NodeMonitorGracePeriod only after that long); a kubelet whose
// certificates expired then gets new ones through CSRs; at last it
// connects, and the node is Ready.
func (k *FakeKubelet) connectInBackground(ctx, runtimeCtx context.Context, silent chan struct{}) {
	k.markNotReadyOnceAnswered(ctx, silent)
	k.mu.Lock()
	expired := k.certsExpired
	k.mu.Unlock()
	if expired {
		if err := k.renewCertificates(ctx); err != nil {
			if ctx.Err() == nil {
				klogf("kubelet %s: certificates: %v", k.Node, err)
			}
			return
		}
	}
	for ctx.Err() == nil {
		err := k.connect(ctx, ctx, runtimeCtx)
		if err == nil {
			return
		}
		if ctx.Err() == nil {
			k.journal(`"Unable to register node with API server" err=%q node=%q`, err.Error(), k.Node)
		}
		sleepCtx(ctx, connectRetryPeriod)
	}
}

// renewCertificates asks for a client certificate as the node-bootstrapper,
// then for a serving certificate as the node, each time waiting until the
// CSR is approved and signed.
func (k *FakeKubelet) renewCertificates(ctx context.Context) error {
	nodeUser := "system:node:" + k.Node
	subject := pkix.Name{CommonName: nodeUser, Organization: []string{"system:nodes"}}
	bootstrapper := rest.ImpersonationConfig{UserName: BootstrapperUser, Groups: bootstrapperGroups}
	k.journal(`"Client certificate expired or missing, bootstrapping a new one" node=%q`, k.Node)
	if _, err := k.requestCertificate(ctx, bootstrapper, &x509.CertificateRequest{Subject: subject}, certificatesv1.KubeAPIServerClientKubeletSignerName,
		[]certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth}); err != nil {
		return err
	}
	node := rest.ImpersonationConfig{UserName: nodeUser, Groups: []string{"system:nodes", "system:authenticated"}}
	serving, err := k.requestCertificate(ctx, node, &x509.CertificateRequest{Subject: subject, DNSNames: []string{k.Node}, IPAddresses: []net.IP{k.IP}},
		certificatesv1.KubeletServingSignerName, []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageServerAuth})
	if err != nil {
		return err
	}
	k.mu.Lock()
	k.serveCert, k.certsExpired = *serving, false
	k.mu.Unlock()
	return nil
}

// requestCertificate creates a CSR for tmpl as identity and waits until it
// is signed. A CSR that is denied, fails or disappears is asked again.
func (k *FakeKubelet) requestCertificate(ctx context.Context, identity rest.ImpersonationConfig, tmpl *x509.CertificateRequest,
	signer string, usages []certificatesv1.KeyUsage) (*tls.Certificate, error) {
	cfg := rest.CopyConfig(k.config)
	cfg.Impersonate = identity
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	obj := &certificatesv1.CertificateSigningRequest{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "csr-"},
		Spec: certificatesv1.CertificateSigningRequestSpec{
			Request:    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}),
			SignerName: signer,
			Usages:     usages,
		},
	}
	csrs := client.CertificatesV1().CertificateSigningRequests()
	for ctx.Err() == nil {
		created, err := csrs.Create(ctx, obj, metav1.CreateOptions{})
		if err != nil {
			sleepCtx(ctx, connectRetryPeriod)
			continue
		}
		k.journal(`"Certificate signing request created" csr=%q signerName=%q`, created.Name, signer)
		certPEM, err := k.awaitCertificate(ctx, csrs, created.Name)
		if err != nil {
			if ctx.Err() == nil {
				k.journal(`"Certificate request was not signed" csr=%q err=%q`, created.Name, err.Error())
				sleepCtx(ctx, 2*time.Second)
			}
			continue
		}
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("CSR %s: %w", created.Name, err)
		}
		k.journal(`"Certificate rotation succeeded" csr=%q signerName=%q`, created.Name, signer)
		return &pair, nil
	}
	return nil, ctx.Err()
}

// errNotSigned: the CSR was denied, failed or is gone.
var errNotSigned = errors.New("not signed")

// awaitCertificate watches CSR name until it carries a certificate. When it
// is approved, kube-controller-manager's signer (the box's) signs it.
func (k *FakeKubelet) awaitCertificate(ctx context.Context, csrs interface {
	Get(context.Context, string, metav1.GetOptions) (*certificatesv1.CertificateSigningRequest, error)
}, name string) ([]byte, error) {
	for {
		c, err := csrs.Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return nil, fmt.Errorf("%w: deleted", errNotSigned)
		case err != nil:
		case len(c.Status.Certificate) > 0:
			return c.Status.Certificate, nil
		default:
			approved := false
			for _, cond := range c.Status.Conditions {
				switch cond.Type {
				case certificatesv1.CertificateDenied, certificatesv1.CertificateFailed:
					return nil, fmt.Errorf("%w: %s: %s", errNotSigned, cond.Type, cond.Message)
				case certificatesv1.CertificateApproved:
					approved = cond.Status == corev1.ConditionTrue
				}
			}
			if approved {
				err := k.signCSR(ctx, c)
				if err == nil {
					continue // read the certificate back
				}
				if ctx.Err() == nil {
					klogf("kubelet %s: sign CSR %s: %v", k.Node, name, err)
				}
			}
		}
		if !sleepCtx(ctx, csrPollPeriod) {
			return nil, ctx.Err()
		}
	}
}

// signCSR is kube-controller-manager's CSR signer: an approved CSR of a
// kubelet signer gets its certificate, with the subject, names and usages
// it asked for.
func (k *FakeKubelet) signCSR(ctx context.Context, c *certificatesv1.CertificateSigningRequest) error {
	block, _ := pem.Decode(c.Spec.Request)
	if block == nil {
		return fmt.Errorf("no PEM request")
	}
	req, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return err
	}
	if err := req.CheckSignature(); err != nil {
		return err
	}
	var ext []x509.ExtKeyUsage
	for _, u := range c.Spec.Usages {
		switch u {
		case certificatesv1.UsageClientAuth:
			ext = append(ext, x509.ExtKeyUsageClientAuth)
		case certificatesv1.UsageServerAuth:
			ext = append(ext, x509.ExtKeyUsageServerAuth)
		}
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      req.Subject,
		NotBefore:    now.Add(-5 * time.Minute),
		NotAfter:     now.Add(kubeletCertValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  ext,
		DNSNames:     req.DNSNames,
		IPAddresses:  req.IPAddresses,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, k.csrSigner.Cert, req.PublicKey, k.csrSigner.Key)
	if err != nil {
		return err
	}
	signed := c.DeepCopy()
	signed.Status.Certificate = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	_, err = k.client.CertificatesV1().CertificateSigningRequests().UpdateStatus(ctx, signed, metav1.UpdateOptions{})
	return err
}

// sleepCtx sleeps for d, or less if ctx ends; it reports whether ctx is
// still alive.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
