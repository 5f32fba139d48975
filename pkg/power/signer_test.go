package power

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
)

func certPEM(t *testing.T, notAfter time.Time) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "signer"},
		NotBefore: notAfter.Add(-365 * 24 * time.Hour), NotAfter: notAfter, IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func signerSecret(crt []byte, annotation string) *corev1.Secret {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: SignerSecret, Namespace: SignerNamespace}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{}}
	if crt != nil {
		s.Data[corev1.TLSCertKey] = crt
	}
	if annotation != "" {
		s.Annotations = map[string]string{NotAfterAnnotation: annotation}
	}
	return s
}

func TestReadSignerExpiry(t *testing.T) {
	notAfter := time.Date(2030, 5, 1, 12, 0, 0, 0, time.UTC)
	other := notAfter.Add(-48 * time.Hour)
	crt := certPEM(t, notAfter)
	cases := []struct {
		name        string
		secret      *corev1.Secret
		want        time.Time
		source      string
		warning     string // substring; "" means none
		errContains string
	}{
		{name: "certificate and matching annotation", secret: signerSecret(crt, notAfter.Format(time.RFC3339)), want: notAfter, source: "certificate"},
		{name: "certificate only", secret: signerSecret(crt, ""), want: notAfter, source: "certificate"},
		{name: "annotation disagrees: the certificate counts", secret: signerSecret(crt, other.Format(time.RFC3339)), want: notAfter, source: "certificate", warning: "the certificate counts"},
		{name: "bad annotation, good certificate", secret: signerSecret(crt, "next year"), want: notAfter, source: "certificate", warning: "not an RFC 3339 time"},
		{name: "annotation only", secret: signerSecret(nil, other.Format(time.RFC3339)), want: other, source: "annotation", warning: "cannot read the certificate"},
		{name: "garbage certificate, annotation", secret: signerSecret([]byte("not pem"), other.Format(time.RFC3339)), want: other, source: "annotation", warning: "no PEM certificate"},
		{name: "neither", secret: signerSecret(nil, ""), errContains: "no annotation"},
		{name: "no certificate, bad annotation", secret: signerSecret(nil, "soon"), errContains: "not an RFC 3339 time"},
		{name: "two certificates: the earliest", secret: signerSecret(append(certPEM(t, notAfter), certPEM(t, other)...), ""), want: other, source: "certificate"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, err := ReadSignerExpiry(c.secret)
			if c.errContains != "" {
				if err == nil || !strings.Contains(err.Error(), c.errContains) {
					t.Fatalf("err = %v, want one containing %q", err, c.errContains)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !e.NotAfter.Equal(c.want) || e.Source != c.source {
				t.Errorf("got %s from %s, want %s from %s", e.NotAfter, e.Source, c.want, c.source)
			}
			if (c.warning == "") != (e.Warning == "") || !strings.Contains(e.Warning, c.warning) {
				t.Errorf("warning %q, want one containing %q", e.Warning, c.warning)
			}
		})
	}
}

func TestCheckRestartBy(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	e := SignerExpiry{NotAfter: now.Add(40 * 24 * time.Hour)}
	if err := CheckRestartBy(e, now.Add(30*24*time.Hour), now); err != nil {
		t.Errorf("restart 10 days before the expiry: %v", err)
	}
	err := CheckRestartBy(e, now.Add(41*24*time.Hour), now)
	if err == nil || !strings.Contains(err.Error(), "2025-02-10T00:00:00Z") || !strings.Contains(err.Error(), "40d 0h from now") {
		t.Errorf("restart a day after the expiry: err = %v, want a refusal naming the expiry", err)
	}
	if err := CheckRestartBy(e, e.NotAfter, now); err != nil {
		t.Errorf("restart at the expiry itself: %v", err)
	}
	expired := SignerExpiry{NotAfter: now.Add(-time.Hour)}
	if err := CheckRestartBy(expired, now.Add(time.Hour), now); err == nil || !strings.Contains(err.Error(), "expired at") {
		t.Errorf("expired signer: err = %v", err)
	}
}

func TestParseRestartBy(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	good := map[string]time.Time{
		"30d":                  now.Add(30 * 24 * time.Hour),
		"2d12h":                now.Add(60 * time.Hour),
		"36h":                  now.Add(36 * time.Hour),
		"90m":                  now.Add(90 * time.Minute),
		"2025-03-01T10:00:00Z": time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC),
		" 1d ":                 now.Add(24 * time.Hour),
	}
	for in, want := range good {
		got, err := ParseRestartBy(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("ParseRestartBy(%q) = %s, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"", "soon", "0d", "-5h", "2024-12-31T00:00:00Z", "3w", "1d-30h"} {
		if got, err := ParseRestartBy(in, now); err == nil {
			t.Errorf("ParseRestartBy(%q) = %s, want an error", in, got)
		}
	}
}
