package box

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	operatorv1 "github.com/openshift/api/operator/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
)

// The kube-apiserver operator's certificate rotations, and the
// kube-apiserver's cert-regeneration controller (read from
// cluster-kube-apiserver-operator: pkg/operator/certrotationcontroller and
// pkg/cmd/certregenerationcontroller, 4.14 and 4.18).
//
// Each rotation keeps a signer in openshift-kube-apiserver-operator and a
// certificate it signs, both secrets annotated with their validity
// (auth.openshift.io/certificate-not-before, -not-after, -issuer); from
// 4.18 the ones OpenShift's tests prove are regenerated after an offline
// expiry also carry certificates.openshift.io/auto-regenerate-after-
// offline-expiry. A rotation that fails reports
// CertRotation_<name>_Degraded=True on kubeapiservers/cluster (library-go
// certrotation), and the kube-apiserver cluster operator is Degraded with
// it.
//
// After the cluster was down past the expiry of its short-lived
// certificates (30 days; the aggregator's signer too), the
// cert-regeneration controller, a container of the kube-apiserver static
// pod, runs the same rotations "only when expired" once the kube-apiserver
// runs: it regenerates exactly the expired certificates of these rotations,
// whatever their annotations say (the offline-expiry annotation records what
// is tested, not what is regenerated). A certificate that is none of
// theirs, such as one the administrator provided, stays expired. Its first
// syncs after a power-on fail while the API it talks to comes up; the box
// shows that as the rotations' Degraded conditions for
// Options.CertRegeneration, after which it regenerates the certificates and
// the conditions clear.

// kasRotation is one rotation: its signer, and the certificate it signs.
type kasRotation struct {
	name             string
	signer           string // in openshift-kube-apiserver-operator
	signerValidity   time.Duration
	targetNamespace  string
	target           string
	targetValidity   time.Duration
	commonName       string
	organization     []string
	servingHostnames []string // nil: a client certificate
	// tested is what the 4.18 operator names in the offline-expiry
	// annotation of the signer and the target, "" when it names nothing.
	signerTested, targetTested string
}

const (
	kasOperatorNamespace = "openshift-kube-apiserver-operator"
	// AutoRegenerateAnnotation marks, from 4.18, a certificate OpenShift's
	// tests prove is regenerated after an offline expiry.
	AutoRegenerateAnnotation = "certificates.openshift.io/auto-regenerate-after-offline-expiry"
	offlineExpiryTest        = "https://github.com/openshift/cluster-kube-apiserver-operator/pull/1631,'operator conditions kube-apiserver'"
	day                      = 24 * time.Hour
)

var kasRotations = []kasRotation{
	{name: "AggregatorProxyClientCert", signer: "aggregator-client-signer", signerValidity: 30 * day,
		targetNamespace: "openshift-kube-apiserver", target: "aggregator-client", targetValidity: 30 * day,
		commonName: "system:openshift-aggregator", signerTested: offlineExpiryTest, targetTested: offlineExpiryTest},
	{name: "KubeAPIServerToKubeletClientCert", signer: KubeletSignerSecret, signerValidity: 365 * day,
		targetNamespace: "openshift-kube-apiserver", target: "kubelet-client", targetValidity: 30 * day,
		commonName: "system:kube-apiserver", organization: []string{"kube-master"}, targetTested: offlineExpiryTest},
	{name: "LocalhostServing", signer: "localhost-serving-signer", signerValidity: 10 * 365 * day,
		targetNamespace: "openshift-kube-apiserver", target: "localhost-serving-cert-certkey", targetValidity: 30 * day,
		commonName: "127.0.0.1", servingHostnames: []string{"localhost", "127.0.0.1"}, targetTested: offlineExpiryTest},
	{name: "KubeControllerManagerClient", signer: "kube-control-plane-signer", signerValidity: 60 * day,
		targetNamespace: "openshift-config-managed", target: "kube-controller-manager-client-cert-key", targetValidity: 30 * day,
		commonName: "system:kube-controller-manager", signerTested: offlineExpiryTest, targetTested: offlineExpiryTest},
	{name: "KubeSchedulerClient", signer: "kube-control-plane-signer", signerValidity: 60 * day,
		targetNamespace: "openshift-config-managed", target: "kube-scheduler-client-cert-key", targetValidity: 30 * day,
		commonName: "system:kube-scheduler", signerTested: offlineExpiryTest, targetTested: offlineExpiryTest},
}

// seedKASCertificates creates the rotations' signers and certificates as
// an installed cluster has them: the long-lived signers (the installer's)
// from the installation, the short-lived ones and every certificate
// recently rotated. The kubelet signer is seedKubeletPKI's.
func (b *Box) seedKASCertificates(ctx context.Context) error {
	installed := time.Now().Add(-b.opts.InstalledAgo).Truncate(time.Second)
	fresh := time.Now().Add(-time.Hour).Truncate(time.Second)
	for _, r := range kasRotations {
		signer, err := b.readCertSecret(ctx, kasOperatorNamespace, r.signer)
		if err != nil {
			return err
		}
		if signer == nil {
			from := fresh
			if r.signerValidity >= 365*day {
				from = installed
			}
			if signer, err = b.writeRotationSigner(ctx, r, from); err != nil {
				return err
			}
		}
		if err := b.writeRotationTarget(ctx, r, signer, fresh); err != nil {
			return err
		}
	}
	return nil
}

// writeRotationSigner writes a new signer of r valid from notBefore for
// its validity, and returns it.
func (b *Box) writeRotationSigner(ctx context.Context, r kasRotation, notBefore time.Time) (*CertKey, error) {
	ca, err := NewCAValidFor(fmt.Sprintf("%s_%s@%d", kasOperatorNamespace, r.signer, notBefore.Unix()), notBefore, notBefore.Add(r.signerValidity))
	if err != nil {
		return nil, err
	}
	return ca, b.putCertSecret(ctx, kasOperatorNamespace, r.signer, ca, r.signerTested)
}

// writeRotationTarget writes r's certificate, signed by signer, valid from
// notBefore for its validity.
func (b *Box) writeRotationTarget(ctx context.Context, r kasRotation, signer *CertKey, notBefore time.Time) error {
	spec := CertSpec{CommonName: r.commonName, Organization: r.organization, NotBefore: notBefore, NotAfter: notBefore.Add(r.targetValidity),
		Usages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if r.servingHostnames != nil {
		spec.Usages = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		for _, h := range r.servingHostnames {
			if ip := net.ParseIP(h); ip != nil {
				spec.IPs = append(spec.IPs, ip)
			} else {
				spec.DNSNames = append(spec.DNSNames, h)
			}
		}
	}
	ck, err := signer.Issue(spec)
	if err != nil {
		return err
	}
	return b.putCertSecret(ctx, r.targetNamespace, r.target, ck, r.targetTested)
}

// putCertSecret creates or replaces a TLS secret with ck, annotated as
// library-go's certrotation annotates it on the box's release.
func (b *Box) putCertSecret(ctx context.Context, namespace, name string, ck *CertKey, tested string) error {
	ann := map[string]string{
		CertNotBeforeAnnotation: ck.Cert.NotBefore.UTC().Format(time.RFC3339),
		CertNotAfterAnnotation:  ck.Cert.NotAfter.UTC().Format(time.RFC3339),
		certIssuerAnnotation:    ck.Cert.Issuer.CommonName,
	}
	if tested != "" && minorOf(b.opts.Version) >= 18 {
		ann[AutoRegenerateAnnotation] = tested
	}
	return b.putTLSSecret(ctx, namespace, name, ck, ann)
}

func (b *Box) putTLSSecret(ctx context.Context, namespace, name string, ck *CertKey, annotations map[string]string) error {
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Annotations: annotations}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{corev1.TLSCertKey: ck.CertPEM, corev1.TLSPrivateKeyKey: ck.KeyPEM}}
	secrets := b.Kube.CoreV1().Secrets(namespace)
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		old, err := secrets.Get(ctx, name, metav1.GetOptions{})
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

// readCertSecret reads a TLS secret's certificate and key, nil when the
// secret does not exist.
func (b *Box) readCertSecret(ctx context.Context, namespace, name string) (*CertKey, error) {
	s, err := b.Kube.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	pair, err := tls.X509KeyPair(s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey])
	if err != nil {
		return nil, fmt.Errorf("secret %s/%s: %w", namespace, name, err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, err
	}
	key, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("secret %s/%s: the key cannot sign", namespace, name)
	}
	return &CertKey{CertPEM: s.Data[corev1.TLSCertKey], KeyPEM: s.Data[corev1.TLSPrivateKeyKey], Cert: cert, Key: key}, nil
}

// certRegenerator is the cert-regeneration controller.
type certRegenerator struct {
	b             *Box
	delay, period time.Duration

	mu sync.Mutex
	// held: the machines are going down; nothing runs until PowerOn.
	held    bool
	noticed map[string]time.Time // by rotation: when its expiry was first seen
	failing map[string]string    // by rotation: its Degraded condition's message
}

func newCertRegenerator(b *Box, delay time.Duration) *certRegenerator {
	return &certRegenerator{b: b, delay: delay, period: 500 * time.Millisecond, noticed: map[string]time.Time{}, failing: map[string]string{}}
}

func (c *certRegenerator) run(ctx context.Context) {
	everyRound(ctx, c.period, func(ctx context.Context) { _ = c.sync(ctx) })
}

func (c *certRegenerator) hold(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.held = on
}

// failingRotations are the rotations whose Degraded condition is True, as
// the kube-apiserver cluster operator reports them: "<type>: <message>".
func (c *certRegenerator) failingRotations() []string {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for name, msg := range c.failing {
		out = append(out, rotationCondition(name)+": "+msg)
	}
	sort.Strings(out)
	return out
}

func rotationCondition(name string) string { return "CertRotation_" + name + "_Degraded" }

// sync looks at every rotation once: an expired signer or certificate is
// reported Degraded when first seen and regenerated after the delay; a
// certificate that its current signer did not sign (its signer was just
// regenerated by another rotation) is regenerated at once.
func (c *certRegenerator) sync(ctx context.Context) error {
	c.mu.Lock()
	held := c.held
	c.mu.Unlock()
	if held {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	now := time.Now()
	for _, r := range kasRotations {
		signer, err := c.b.readCertSecret(ctx, kasOperatorNamespace, r.signer)
		if err != nil {
			return err
		}
		target, err := c.b.readCertSecret(ctx, r.targetNamespace, r.target)
		if err != nil {
			return err
		}
		expired := ""
		switch {
		case signer != nil && !now.Before(signer.Cert.NotAfter):
			expired = fmt.Sprintf("%s/%s", kasOperatorNamespace, r.signer)
		case target != nil && !now.Before(target.Cert.NotAfter):
			expired = fmt.Sprintf("%s/%s", r.targetNamespace, r.target)
		}
		c.mu.Lock()
		first, seen := c.noticed[r.name]
		_, failing := c.failing[r.name]
		c.mu.Unlock()
		switch {
		case expired == "" && signer != nil && target != nil && target.Cert.CheckSignatureFrom(signer.Cert) != nil:
			if err := c.b.writeRotationTarget(ctx, r, signer, now); err != nil {
				return err
			}
		case expired == "" && failing:
			if err := c.setCondition(ctx, r.name, ""); err != nil {
				return err
			}
		case expired == "":
		case !seen:
			msg := fmt.Sprintf("the certificate in secret %s expired at %s; it is regenerated once the kube-apiserver answers on localhost", expired, now.UTC().Format(time.RFC3339))
			if err := c.setCondition(ctx, r.name, msg); err != nil {
				return err
			}
			c.mu.Lock()
			c.noticed[r.name] = now
			c.mu.Unlock()
		case now.Sub(first) >= c.delay:
			if err := c.regenerate(ctx, r, signer, now); err != nil {
				return err
			}
			if err := c.setCondition(ctx, r.name, ""); err != nil {
				return err
			}
			c.mu.Lock()
			delete(c.noticed, r.name)
			c.mu.Unlock()
		}
	}
	return nil
}

// regenerate renews r's signer when it expired, and its certificate.
func (c *certRegenerator) regenerate(ctx context.Context, r kasRotation, signer *CertKey, now time.Time) error {
	if signer == nil || !now.Before(signer.Cert.NotAfter) {
		var err error
		if signer, err = c.b.writeRotationSigner(ctx, r, now.Truncate(time.Second)); err != nil {
			return err
		}
	}
	klogf("cert-regeneration controller: regenerated %s/%s", r.targetNamespace, r.target)
	return c.b.writeRotationTarget(ctx, r, signer, now.Truncate(time.Second))
}

// setCondition sets r's CertRotation_<name>_Degraded on kubeapiservers/
// cluster: True with msg, or False when msg is empty.
func (c *certRegenerator) setCondition(ctx context.Context, name, msg string) error {
	cond := operatorv1.OperatorCondition{Type: rotationCondition(name), Status: operatorv1.ConditionFalse}
	if msg != "" {
		cond.Status, cond.Reason, cond.Message = operatorv1.ConditionTrue, "RotationError", msg
	}
	ops := c.b.Operator.OperatorV1().KubeAPIServers()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		o, err := ops.Get(ctx, "cluster", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if !setOperatorCondition(&o.Status.Conditions, cond) {
			return nil
		}
		_, err = ops.UpdateStatus(ctx, o, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if msg == "" {
		delete(c.failing, name)
	} else {
		c.failing[name] = msg
	}
	return nil
}

// ShutDownPastCertificateExpiry is the cluster of OpenShift 4.12
// documentation, Backup and restore, 5.4.3 "Recovering from expired control
// plane certificates": shut down, and started again only after its
// short-lived certificates expired. Every machine goes off at once, as
// after `shutdown -h 1` on every node: the node lifecycle controller has
// no time to see any node go, and each stays Ready with its heartbeat
// from before. While the machines are off the certificates of the
// kube-apiserver operator's rotations with a validity of up to 60 days
// expire (and the aggregator's 30-day signer), as do the kubelets' (each
// node needs CSRs when it boots), and so does each TLS secret in
// userProvided ("namespace/name"), which the administrator provided and
// nothing renews. PowerOn starts the machines again.
func (b *Box) ShutDownPastCertificateExpiry(ctx context.Context, userProvided ...string) error {
	if b.certRegen != nil {
		b.certRegen.hold(true)
	}
	now := time.Now().Truncate(time.Second)
	for _, r := range kasRotations {
		if r.targetValidity > 60*day {
			continue
		}
		signer, err := b.readCertSecret(ctx, kasOperatorNamespace, r.signer)
		if err != nil {
			return err
		}
		if r.signerValidity <= 60*day && !signer.Cert.NotAfter.Before(now) {
			if signer, err = b.writeRotationSigner(ctx, r, now.Add(-r.signerValidity-day)); err != nil {
				return err
			}
		}
		if err := b.writeRotationTarget(ctx, r, signer, now.Add(-r.targetValidity-day)); err != nil {
			return err
		}
	}
	for _, ref := range userProvided {
		namespace, name, ok := strings.Cut(ref, "/")
		if !ok {
			return fmt.Errorf("user-provided certificate %q: not namespace/name", ref)
		}
		ca, err := NewCAValidFor(name+".example.com", now.Add(-366*day), now.Add(-day))
		if err != nil {
			return err
		}
		if err := b.putTLSSecret(ctx, namespace, name, ca, nil); err != nil {
			return err
		}
	}
	nodes := b.NodeList()
	sort.SliceStable(nodes, func(i, j int) bool { return !nodes[i].Master && nodes[j].Master })
	for _, n := range nodes {
		if n.Kubelet != nil {
			n.Kubelet.ExpireCertificates()
		}
		b.powerDown(n)
	}
	return nil
}

// resumeCertRegeneration lets the controller run again once the machines
// boot, and has it look at once, so that the API shows its conditions when
// PowerOn returns.
func (b *Box) resumeCertRegeneration(ctx context.Context) error {
	if b.certRegen == nil {
		return nil
	}
	b.certRegen.hold(false)
	return b.certRegen.sync(ctx)
}
