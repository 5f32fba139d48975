package health

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"
)

func servingCert(t *testing.T, notBefore, notAfter time.Time) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "api.box.example"},
		Issuer: pkix.Name{CommonName: "kube-apiserver-lb-signer"}, NotBefore: notBefore, NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestServingCertificate(t *testing.T) {
	now := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	chain := func(from, to time.Duration) ServingChain {
		return ServingChain{Server: "https://api.box.example:6443", Chain: []*x509.Certificate{servingCert(t, now.Add(from), now.Add(to))}}
	}
	if r := ServingCertificate(chain(-10*day, 20*day), now); r.Severity != OK || !strings.Contains(r.Summary, "in 20d") {
		t.Errorf("20 days of 30 left: %+v", r)
	}
	if r := ServingCertificate(chain(-28*day, 2*day), now); r.Severity != Warn || !strings.Contains(r.Summary, "overdue") {
		t.Errorf("2 days of 30 left: %+v", r)
	}
	if r := ServingCertificate(chain(-31*day, -day), now); r.Severity != Fail || !strings.Contains(r.Fix, "oc recover certs recover") {
		t.Errorf("expired a day ago: %+v", r)
	}
	unverified := chain(-10*day, 20*day)
	unverified.VerifyErr = errors.New("x509: certificate signed by unknown authority")
	if r := ServingCertificate(unverified, now); r.Severity != Warn || !strings.Contains(strings.Join(r.Evidence, "\n"), "does not verify against the kubeconfig's CA") {
		t.Errorf("not verified by the kubeconfig's CA: %+v", r)
	}
	if r := ServingCertificate(ServingChain{Err: errors.New("connect to api: refused")}, now); r.Severity != Fail || !strings.Contains(r.Summary, "could not run") {
		t.Errorf("no answer: %+v", r)
	}
}
