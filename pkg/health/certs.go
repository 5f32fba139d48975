package health

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/oc-recover/oc-recover/pkg/power"
)

// The annotations that say who renews a certificate secret.
const (
	// NotBeforeAnnotation goes with power.NotAfterAnnotation on the
	// secrets OpenShift's certificate rotation manages (library-go
	// certrotation).
	NotBeforeAnnotation = "auth.openshift.io/certificate-not-before"
	// AutoRegenerateAnnotation marks a certificate or signer that
	// OpenShift's tests prove is regenerated when it expired while the
	// cluster was down; its value links the test.
	AutoRegenerateAnnotation = "certificates.openshift.io/auto-regenerate-after-offline-expiry"
	// The service CA operator renews the serving certificates it issues
	// and records their expiry under one of these.
	serviceCAExpiry      = "service.beta.openshift.io/expiry"
	serviceCAExpiryAlpha = "service.alpha.openshift.io/expiry"
	// cert-manager renews the certificates it issues (with the cert-manager
	// Operator, often the ingress one).
	certManagerCertificate = "cert-manager.io/certificate-name"
	// From 4.8 to 4.15 the etcd operator's cert signer records only the
	// node's UID on each member's peer, serving and metrics secret (their
	// validity annotations came with 4.16's certrotation), and renews the
	// certificate once less than a fifth of its validity is left.
	etcdNodeUID = "etcd-operator.alpha.openshift.io/cert-secret-node-uid"
)

// Thresholds. OpenShift rotates its certificates at 50 to 85 % of their
// validity (aggregator-client-signer 30 d at 15 d, the kubelet signer 1 y
// at 292 d, the etcd signer 5 y at 4.2 y), so a rotated certificate with
// less than a tenth of its validity left has missed its rotation. Nothing
// renews the unmanaged ones, so they are flagged two months ahead.
const (
	overduePercent    = 10
	unmanagedWarn     = 60 * 24 * time.Hour
	kubeletSignerWarn = 30 * 24 * time.Hour
)

// certificate is what the checks read of a secret's tls.crt: its leaf (the
// first certificate), or only the annotations when tls.crt is unreadable.
type certificate struct {
	cn                  string
	isCA                bool
	notBefore, notAfter time.Time
	// unreadable is why tls.crt could not be read, when the annotations
	// stood in for it.
	unreadable string
}

func readCertificate(s *corev1.Secret) (certificate, error) {
	leaf, err := leafCertificate(s.Data[corev1.TLSCertKey])
	if err == nil {
		return certificate{cn: leaf.Subject.CommonName, isCA: leaf.IsCA, notBefore: leaf.NotBefore, notAfter: leaf.NotAfter}, nil
	}
	c := certificate{unreadable: err.Error()}
	ann, ok := s.Annotations[power.NotAfterAnnotation]
	if !ok {
		return c, err
	}
	if c.notAfter, err = time.Parse(time.RFC3339, ann); err != nil {
		return c, fmt.Errorf("%s, and %s=%q is not an RFC 3339 time", c.unreadable, power.NotAfterAnnotation, ann)
	}
	c.notBefore, _ = time.Parse(time.RFC3339, s.Annotations[NotBeforeAnnotation])
	return c, nil
}

func leafCertificate(data []byte) (*x509.Certificate, error) {
	if len(data) == 0 {
		return nil, errors.New("no " + corev1.TLSCertKey)
	}
	for rest := data; ; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			return nil, errors.New("no PEM certificate in " + corev1.TLSCertKey)
		}
		if block.Type == "CERTIFICATE" {
			return x509.ParseCertificate(block.Bytes)
		}
	}
}

// describe names the secret and its certificate's subject, and when the
// certificate expires or expired: "ns/name (CN) expires 2026-12-20 (in 18d)".
func (c certificate) describe(s *corev1.Secret, now time.Time) string {
	name := s.Namespace + "/" + s.Name
	switch {
	case c.unreadable != "":
		name += " (certificate unreadable: " + c.unreadable + "; by its annotation)"
	case c.cn != "":
		name += " (" + c.cn + ")"
	}
	if left := c.notAfter.Sub(now); left > 0 {
		return fmt.Sprintf("%s expires %s (in %s)", name, day(c.notAfter), roughly(left))
	}
	return fmt.Sprintf("%s expired %s ago", name, roughly(now.Sub(c.notAfter)))
}

// RotatedCertificates judges the certificates OpenShift rotates itself
// (secrets annotated auth.openshift.io/certificate-not-after, and before
// 4.16 the etcd members' secrets that carry their node's UID), by the leaf
// of their tls.crt (the annotation when it is unreadable): FAIL when one
// has expired or its expiry cannot be read; WARN when one has missed its
// rotation (less than a tenth of its validity left), and, when until (the
// planned restart after a shutdown) is set, when one expires before it and
// is not marked to regenerate after an offline expiry. until is zero when
// no shutdown is planned: OpenShift's own 30-day certificates always expire
// within any month, and the cluster renews them while it runs.
func RotatedCertificates(secrets []corev1.Secret, now, until time.Time) Result {
	r := Result{ID: "certs.signers", Severity: OK}
	var expired, overdue, downtime bool
	judged := 0
	for i := range secrets {
		s := &secrets[i]
		_, annotated := s.Annotations[power.NotAfterAnnotation]
		if (!annotated && s.Annotations[etcdNodeUID] == "") || revisionCopy(s) {
			continue
		}
		judged++
		c, err := readCertificate(s)
		switch {
		case err != nil:
			r.Severity, expired = Fail, true
			r.Evidence = append(r.Evidence, fmt.Sprintf("%s/%s: cannot tell when it expires: %v", s.Namespace, s.Name, err))
		case !c.notAfter.After(now):
			r.Severity, expired = Fail, true
			r.Evidence = append(r.Evidence, c.describe(s, now))
		case !c.notBefore.IsZero() && rotationOverdue(c.notBefore, c.notAfter, now):
			r.Severity, overdue = Worse(r.Severity, Warn), true
			r.Evidence = append(r.Evidence, c.describe(s, now)+": its rotation is overdue")
		case !until.IsZero() && c.notAfter.Before(until) && s.Annotations[AutoRegenerateAnnotation] == "":
			r.Severity, downtime = Worse(r.Severity, Warn), true
			what := "certificate"
			if c.isCA {
				what = "signer"
			}
			r.Evidence = append(r.Evidence, fmt.Sprintf("%s, before the restart (%s), and is no %s known to regenerate after an offline expiry", c.describe(s, now), day(until), what))
		}
	}
	sort.Strings(r.Evidence)
	r.Summary = fmt.Sprintf("%d rotated certificates", judged)
	if len(r.Evidence) > 0 {
		r.Summary += fmt.Sprintf(", %d to look at", len(r.Evidence))
	}
	var fix []string
	if expired {
		fix = append(fix, "OpenShift regenerates its expired control-plane certificates once the API answers (OpenShift 4.12 documentation, Backup and restore, 5.4.3 \"Recovering from expired control plane certificates\"); `oc recover certs recover` approves the nodes' CSRs and waits for it")
	}
	if overdue {
		fix = append(fix, "the operator that owns an overdue certificate is not rotating it: see its CertRotation_*_Degraded condition (the staticpods checks) and `oc get clusteroperators`")
	}
	if expired || overdue {
		fix = append(fix, "on 4.14 and later `oc adm ocp-certificates regenerate-leaf` and `regenerate-top-level` force a rotation")
	}
	if downtime {
		fix = append(fix, "start the cluster before those expire (`oc recover shutdown --restart-by` checks the kubelet signer), or be ready to recover them by hand after the restart")
	}
	r.Fix = strings.Join(fix, "; ")
	return r
}

// rotationOverdue reports whether less than overduePercent of a validity
// is left. In seconds: a Duration times 100 overflows past 2.9 years (an
// etcd certificate's 3, its signer's 5, a 10-year signer).
func rotationOverdue(notBefore, notAfter, now time.Time) bool {
	left, validity := notAfter.Sub(now).Seconds(), notAfter.Sub(notBefore).Seconds()
	return left*100 < validity*overduePercent
}

// UnmanagedCertificates judges the TLS secrets of openshift-* namespaces
// that nothing in the cluster renews: no certificate rotation annotation,
// not issued by the service CA or cert-manager. They are user-provided
// (the ingress default certificate, the API server's named certificates)
// or made once by an operator (the ingress operator's router-ca, 2 years):
// FAIL when one has expired, WARN when one expires within 60 days or its
// certificate cannot be read.
func UnmanagedCertificates(secrets []corev1.Secret, now time.Time) Result {
	r := Result{ID: "certs.unmanaged", Severity: OK}
	judged := 0
	for i := range secrets {
		s := &secrets[i]
		if s.Type != corev1.SecretTypeTLS || !strings.HasPrefix(s.Namespace, "openshift-") || managed(s) || revisionCopy(s) {
			continue
		}
		judged++
		leaf, err := leafCertificate(s.Data[corev1.TLSCertKey])
		if err != nil {
			r.Severity = Worse(r.Severity, Warn)
			r.Evidence = append(r.Evidence, fmt.Sprintf("%s/%s: cannot read its certificate: %v", s.Namespace, s.Name, err))
			continue
		}
		c := certificate{cn: leaf.Subject.CommonName, isCA: leaf.IsCA, notBefore: leaf.NotBefore, notAfter: leaf.NotAfter}
		switch left := c.notAfter.Sub(now); {
		case left <= 0:
			r.Severity = Fail
			r.Evidence = append(r.Evidence, c.describe(s, now))
		case left < unmanagedWarn:
			r.Severity = Worse(r.Severity, Warn)
			r.Evidence = append(r.Evidence, c.describe(s, now))
		}
	}
	sort.Strings(r.Evidence)
	r.Summary = fmt.Sprintf("%d certificates that nothing rotates", judged)
	if len(r.Evidence) > 0 {
		r.Summary += fmt.Sprintf(", %d expired or expiring within 60 days", len(r.Evidence))
		r.Fix = "nothing in the cluster renews these: replace each with a new certificate before it expires (OpenShift documentation, Security and compliance, \"Replacing the default ingress certificate\" for the ingress ones, \"Adding API server certificates\" for the API server's)"
	}
	return r
}

// managed reports whether something renews the certificate in s: OpenShift's
// certificate rotation, the etcd operator's cert signer, the service CA
// operator or cert-manager.
func managed(s *corev1.Secret) bool {
	for _, a := range []string{power.NotAfterAnnotation, etcdNodeUID, serviceCAExpiry, serviceCAExpiryAlpha, certManagerCertificate} {
		if _, ok := s.Annotations[a]; ok {
			return true
		}
	}
	return false
}

// revisionCopy reports whether s is a static-pod revision's copy of a
// secret (<name>-<revision>, owned by the revision-status-<revision>
// configmap): it keeps what the secret held at that revision, so an old
// revision's copy may expire while the secret itself has been renewed.
func revisionCopy(s *corev1.Secret) bool {
	for _, o := range s.OwnerReferences {
		if o.Kind == "ConfigMap" && strings.HasPrefix(o.Name, "revision-status-") {
			return true
		}
	}
	return false
}

// KubeletSigner judges the kube-apiserver-to-kubelet signer (secret may be
// nil when it could not be read): FAIL when it has expired or its expiry
// cannot be read, WARN within 30 days of expiry. It is rotated after about
// 292 of its 365 days, so 30 days left means the rotation has failed, and
// a cluster shut down past that date cannot start without recovering its
// certificates.
func KubeletSigner(secret *corev1.Secret, now time.Time) Result {
	r := Result{ID: "certs.kubeletsigner", Severity: OK}
	where := power.SignerNamespace + "/" + power.SignerSecret
	if secret == nil {
		return CouldNotRun(r.ID, errors.New("could not read "+where))
	}
	e, err := power.ReadSignerExpiry(secret)
	if err != nil {
		return CouldNotRun(r.ID, err)
	}
	if e.Warning != "" {
		r.Evidence = append(r.Evidence, e.Warning)
	}
	left := e.NotAfter.Sub(now)
	switch {
	case left <= 0:
		r.Severity = Fail
		r.Summary = fmt.Sprintf("%s expired %s ago", where, roughly(-left))
		r.Fix = "recover the control-plane certificates (OpenShift 4.12 documentation, Backup and restore, 5.4.3 \"Recovering from expired control plane certificates\"): `oc recover certs recover`"
	case left < kubeletSignerWarn:
		r.Severity = Warn
		r.Summary = fmt.Sprintf("%s expires %s (in %s)", where, day(e.NotAfter), roughly(left))
		r.Fix = "its rotation is overdue: see the kube-apiserver operator's CertRotation_*_Degraded conditions (staticpods.kubeapiserver); do not shut the cluster down past its expiry (`oc recover shutdown --restart-by` refuses to)"
	default:
		r.Summary = fmt.Sprintf("%s expires %s (in %s)", where, day(e.NotAfter), roughly(left))
	}
	return r
}
