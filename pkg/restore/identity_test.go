package restore

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

type ca struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newCA(t *testing.T, cn string, notBefore time.Time) ca {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: cn}, NotBefore: notBefore, NotAfter: notBefore.Add(10 * 365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return ca{c, key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

func (c ca) issue(t *testing.T, cn string, notAfter time.Time) []byte {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: cn, Organization: []string{"system:masters"}},
		NotBefore: c.cert.NotBefore, NotAfter: notAfter, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, &key.PublicKey, c.key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestIdentitySurvivesTheRestore(t *testing.T) {
	now := time.Date(2026, 12, 2, 5, 0, 0, 0, time.UTC)
	takenAt := now.Add(-48 * time.Hour)
	admin := newCA(t, "admin-kubeconfig-signer", now.Add(-365*24*time.Hour))
	newer := newCA(t, "a-signer-made-yesterday", now.Add(-24*time.Hour))
	certOf := func(pemData []byte) Identity {
		id, err := IdentityOf(&rest.Config{TLSClientConfig: rest.TLSClientConfig{CertData: pemData}})
		if err != nil || id.Kind != "client-certificate" {
			t.Fatalf("IdentityOf: %+v, %v", id, err)
		}
		return id
	}
	adminID := certOf(admin.issue(t, "system:admin", now.Add(365*24*time.Hour)))
	newerID := certOf(newer.issue(t, "system:admin", now.Add(365*24*time.Hour)))
	expiredID := certOf(admin.issue(t, "system:admin", now.Add(-time.Hour)))
	oauth := Identity{Kind: "oauth-token", token: "sha256~abc"}

	for _, tc := range []struct {
		name          string
		id            Identity
		clientCA, ca  []byte
		encrypted     bool
		tokenRecorded bool
		ok            bool
		want          string
	}{
		{"a certificate the backup's bundle trusts", adminID, admin.pem, nil, false, false, true, "issued by admin-kubeconfig-signer, which the backup's client CA bundle"},
		{"a certificate of a signer the backup does not know", newerID, admin.pem, nil, false, false, false, "would refuse it"},
		{"an expired certificate", expiredID, admin.pem, nil, false, false, false, "expired on"},
		{"the bundle encrypted: the live one, through a CA older than the backup", adminID, nil, admin.pem, true, false, true, "the live client CA bundle"},
		{"the bundle encrypted: a CA newer than the backup", newerID, nil, append(admin.pem, newer.pem...), true, false, false, "created on"},
		{"no bundle at all", adminID, nil, nil, false, false, false, "holds no client CA bundle"},
		{"an OAuth token the backup records", oauth, nil, nil, false, true, true, "which the backup's snapshot records"},
		{"an OAuth token issued after the backup", oauth, nil, nil, false, false, false, "issued after the backup"},
		{"a service account token", Identity{Kind: "token", token: "eyJ"}, admin.pem, nil, false, false, false, "cannot be checked"},
		{"an exec plugin", Identity{Kind: "exec"}, admin.pem, nil, false, false, false, "exec plugin"},
	} {
		s := IdentitySurvives(tc.id, tc.clientCA, tc.ca, tc.encrypted, tc.tokenRecorded, takenAt, now)
		if s.OK != tc.ok || !strings.Contains(s.Why, tc.want) {
			t.Errorf("%s: %+v, want ok=%v with %q", tc.name, s, tc.ok, tc.want)
		}
		if !s.OK && !strings.Contains(s.Why, "auth/kubeconfig") {
			t.Errorf("%s: the refusal does not say what to use instead: %s", tc.name, s.Why)
		}
	}
}

func TestIdentityOfTellsTheKinds(t *testing.T) {
	for _, tc := range []struct {
		cfg  *rest.Config
		want string
	}{
		{&rest.Config{BearerToken: "sha256~x"}, "oauth-token"},
		{&rest.Config{BearerToken: "eyJhbGciOi"}, "token"},
		{&rest.Config{ExecProvider: &clientcmdapi.ExecConfig{Command: "x"}}, "exec"},
		{&rest.Config{Username: "kubeadmin", Password: "x"}, "basic"},
		{&rest.Config{}, "none"},
	} {
		if id, err := IdentityOf(tc.cfg); err != nil || id.Kind != tc.want {
			t.Errorf("%+v: %+v %v, want %s", tc.cfg, id, err, tc.want)
		}
	}
	if _, err := IdentityOf(&rest.Config{TLSClientConfig: rest.TLSClientConfig{CertData: []byte("not pem")}}); err == nil {
		t.Error("a client certificate that is not PEM is accepted")
	}
}

// The OAuth server names the object of a token sha256~ and the unpadded
// URL-safe base64 of the sha256 of what follows the prefix.
func TestOAuthTokenKey(t *testing.T) {
	sum := sha256.Sum256([]byte("secret-part"))
	want := "/openshift.io/oauth/accesstokens/sha256~" + base64.RawURLEncoding.EncodeToString(sum[:])
	if got := (Identity{Kind: "oauth-token", token: "sha256~secret-part"}).OAuthTokenKey(); got != want {
		t.Errorf("key %q, want %q", got, want)
	}
	if got := (Identity{Kind: "token", token: "x"}).OAuthTokenKey(); got != "" {
		t.Errorf("a non-OAuth token has key %q", got)
	}
}
