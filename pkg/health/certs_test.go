package health

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/oc-recover/oc-recover/pkg/power"
)

const day24 = 24 * time.Hour

// pemCertificate is a self-signed certificate for cn, valid from
// notBefore to notAfter.
func pemCertificate(t *testing.T, cn string, isCA bool, notBefore, notAfter time.Time) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, NotBefore: notBefore, NotAfter: notAfter,
		IsCA: isCA, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// certSecret is a kubernetes.io/tls secret holding a certificate issued
// validity before now and expiring left after now (negative: expired).
func certSecret(t *testing.T, ns, name, cn string, isCA bool, validity, left time.Duration, annotations ...string) corev1.Secret {
	t.Helper()
	notAfter := now.Add(left)
	s := corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: map[string]string{}}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{corev1.TLSCertKey: pemCertificate(t, cn, isCA, notAfter.Add(-validity), notAfter)}}
	for _, a := range annotations {
		k, v, _ := strings.Cut(a, "=")
		s.Annotations[k] = v
	}
	return s
}

// rotated is a secret as OpenShift's certificate rotation writes it.
func rotated(t *testing.T, name string, isCA bool, validity, left time.Duration, annotations ...string) corev1.Secret {
	t.Helper()
	notAfter := now.Add(left).UTC().Format(time.RFC3339)
	return certSecret(t, "openshift-kube-apiserver-operator", name, name, isCA, validity, left, append(annotations, power.NotAfterAnnotation+"="+notAfter)...)
}

func TestRotatedCertificates(t *testing.T) {
	healthy := rotated(t, "aggregator-client-signer", true, 30*day24, 20*day24, AutoRegenerateAnnotation+"=https://github.com/openshift/origin/pull/28000")
	until := now.Add(30 * day24)
	for _, tc := range []struct {
		name     string
		s        corev1.Secret
		until    time.Time
		severity Severity
		evidence string
	}{
		{"a month-long signer at its half", rotated(t, "kube-control-plane-signer", true, 60*day24, 29*day24), time.Time{}, OK, ""},
		{"expired", rotated(t, "kube-control-plane-signer", true, 60*day24, -3*day24), time.Time{}, Fail,
			"openshift-kube-apiserver-operator/kube-control-plane-signer (kube-control-plane-signer) expired 3d ago"},
		{"under a tenth of its validity left", rotated(t, "etcd-signer", true, 5*365*day24, 180*day24), time.Time{}, Warn,
			"openshift-kube-apiserver-operator/etcd-signer (etcd-signer) expires 2027-05-30 (in 180d): its rotation is overdue"},
		{"just over a tenth left", rotated(t, "etcd-signer", true, 5*365*day24, 183*day24), time.Time{}, OK, ""},
		// More than 2.9 years left would overflow a Duration times 100.
		{"a new 5-year signer", rotated(t, "etcd-signer", true, 5*365*day24, 5*365*day24-time.Hour), time.Time{}, OK, ""},
		{"a new 10-year signer", rotated(t, "localhost-serving-signer", true, 10*365*day24, 3619*day24), time.Time{}, OK, ""},
		{"expires before the restart, not known to regenerate", rotated(t, "kube-control-plane-signer", true, 60*day24, 18*day24+time.Hour), until, Warn,
			"(kube-control-plane-signer) expires 2026-12-19 (in 18d), before the restart (2026-12-31), and is no signer known to regenerate"},
		{"expires before the restart, regenerated after offline expiry", rotated(t, "kube-control-plane-signer", true, 60*day24, 18*day24, AutoRegenerateAnnotation+"=https://github.com/openshift/cluster-kube-apiserver-operator/pull/1631"), until, OK, ""},
		{"expires after the restart", rotated(t, "kube-control-plane-signer", true, 60*day24, 31*day24), until, OK, ""},
		{"a leaf expires before the restart", rotated(t, "kube-scheduler-client-cert-key", false, 30*day24, 20*day24), until, Warn, "and is no certificate known to regenerate"},
		// Before 4.16 the etcd operator renews its members' certificates
		// without validity annotations: the node's UID marks them.
		{"an etcd member's certificate before 4.16, expired", certSecret(t, "openshift-etcd", "etcd-serving-master-0", "system:etcd-server:etcd-client", false, 3*365*day24, -day24, etcdNodeUID+"=0b1c"), time.Time{}, Fail,
			"openshift-etcd/etcd-serving-master-0 (system:etcd-server:etcd-client) expired 24h ago"},
		{"an etcd member's certificate before 4.16, valid", certSecret(t, "openshift-etcd", "etcd-peer-master-0", "system:etcd-peer:etcd-client", false, 3*365*day24, 900*day24, etcdNodeUID+"=0b1c"), time.Time{}, OK, ""},
	} {
		r := RotatedCertificates([]corev1.Secret{healthy, tc.s}, now, tc.until)
		if r.Severity != tc.severity || !strings.Contains(evidence(r), tc.evidence) || (tc.evidence == "") != (len(r.Evidence) == 0) || (r.Severity == OK) != (r.Fix == "") {
			t.Errorf("%s: %+v, want %s with %q", tc.name, r, tc.severity, tc.evidence)
		}
	}
}

func TestRotatedCertificatesReading(t *testing.T) {
	// tls.crt unreadable: the annotation stands in for it.
	s := rotated(t, "kube-apiserver-to-kubelet-signer", true, 365*day24, -time.Hour)
	s.Data[corev1.TLSCertKey] = []byte("garbage")
	if r := RotatedCertificates([]corev1.Secret{s}, now, time.Time{}); r.Severity != Fail || !strings.Contains(evidence(r), "by its annotation) expired 1h ago") {
		t.Errorf("expired by its annotation: %+v", r)
	}
	s.Annotations[power.NotAfterAnnotation] = "soon"
	if r := RotatedCertificates([]corev1.Secret{s}, now, time.Time{}); r.Severity != Fail || !strings.Contains(evidence(r), "cannot tell when it expires") {
		t.Errorf("no expiry to read: %+v", r)
	}
	// An old revision's copy keeps its old certificate; the secret it was
	// copied from is what counts.
	old := rotated(t, "localhost-recovery-serving-certkey-3", false, 30*day24, -day24)
	old.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: "revision-status-3"}}
	unannotated := certSecret(t, "openshift-ingress", "router-certs-default", "*.apps.example.com", false, 730*day24, -day24)
	if r := RotatedCertificates([]corev1.Secret{old, unannotated}, now, time.Time{}); r.Severity != OK || r.Summary != "0 rotated certificates" {
		t.Errorf("revision copy and unannotated secret: %+v", r)
	}
}

func TestUnmanagedCertificates(t *testing.T) {
	for _, tc := range []struct {
		name     string
		s        corev1.Secret
		severity Severity
		evidence string
	}{
		{"the ingress CA, 61 days left", certSecret(t, "openshift-ingress-operator", "router-ca", "ingress-operator@1700000000", true, 730*day24, 61*day24), OK, ""},
		{"the ingress CA, 59 days left", certSecret(t, "openshift-ingress-operator", "router-ca", "ingress-operator@1700000000", true, 730*day24, 59*day24), Warn,
			"openshift-ingress-operator/router-ca (ingress-operator@1700000000) expires 2027-01-29 (in 59d)"},
		{"a user's ingress certificate, expired", certSecret(t, "openshift-ingress", "custom-certs-default", "*.apps.example.com", false, 365*day24, -2*time.Hour), Fail,
			"openshift-ingress/custom-certs-default (*.apps.example.com) expired 2h ago"},
		{"rotated by OpenShift", rotated(t, "kube-control-plane-signer", true, 60*day24, -day24), OK, ""},
		{"issued by the service CA", certSecret(t, "openshift-monitoring", "prometheus-k8s-tls", "prometheus-k8s.openshift-monitoring.svc", false, 730*day24, day24, serviceCAExpiry+"=x"), OK, ""},
		{"issued by cert-manager", certSecret(t, "openshift-ingress", "letsencrypt", "*.apps.example.com", false, 90*day24, 20*day24, certManagerCertificate+"=apps"), OK, ""},
		{"a user namespace", certSecret(t, "shop", "tls", "shop.example.com", false, 90*day24, -day24), OK, ""},
		{"an etcd member's certificate before 4.16", certSecret(t, "openshift-etcd", "etcd-serving-master-0", "system:etcd-server:etcd-client", false, 3*365*day24, 30*day24, etcdNodeUID+"=0b1c"), OK, ""},
	} {
		r := UnmanagedCertificates([]corev1.Secret{tc.s}, now)
		if r.Severity != tc.severity || evidence(r) != tc.evidence || (r.Severity == OK) != (r.Fix == "") {
			t.Errorf("%s: %+v, want %s with %q", tc.name, r, tc.severity, tc.evidence)
		}
		if r.Severity != OK && !strings.Contains(r.Fix, "Replacing the default ingress certificate") {
			t.Errorf("%s: fix %q", tc.name, r.Fix)
		}
	}
	broken := certSecret(t, "openshift-config", "api-cert", "api.example.com", false, 365*day24, 100*day24)
	broken.Data[corev1.TLSCertKey] = nil
	if r := UnmanagedCertificates([]corev1.Secret{broken}, now); r.Severity != Warn || !strings.Contains(evidence(r), "openshift-config/api-cert: cannot read its certificate: no tls.crt") {
		t.Errorf("unreadable: %+v", r)
	}
}

func TestKubeletSigner(t *testing.T) {
	signer := func(left time.Duration) *corev1.Secret {
		s := certSecret(t, power.SignerNamespace, power.SignerSecret, "openshift-kube-apiserver-operator_kube-apiserver-to-kubelet-signer@1", true, 365*day24, left)
		return &s
	}
	for _, tc := range []struct {
		name     string
		s        *corev1.Secret
		severity Severity
		summary  string
		fix      bool
	}{
		{"31 days left", signer(31 * day24), OK, "expires 2027-01-01 (in 31d)", false},
		{"29 days left", signer(29 * day24), Warn, "expires 2026-12-30 (in 29d)", true},
		{"expired", signer(-5 * time.Minute), Fail, "expired 5m ago", true},
		{"not read", nil, Fail, "could not run: could not read " + power.SignerNamespace, false},
		{"unreadable", &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: power.SignerNamespace, Name: power.SignerSecret}}, Fail, "could not run: cannot tell when", false},
	} {
		r := KubeletSigner(tc.s, now)
		if r.ID != "certs.kubeletsigner" || r.Severity != tc.severity || !strings.Contains(r.Summary, tc.summary) || tc.fix != (r.Fix != "") {
			t.Errorf("%s: %+v, want %s with %q", tc.name, r, tc.severity, tc.summary)
		}
	}
}
