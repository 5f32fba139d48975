package backup

import (
	"archive/tar"
	"compress/gzip"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func certPEM(t *testing.T, cn string, notAfter time.Time) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, NotBefore: notAfter.Add(-time.Hour), NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// The archive's certificates are counted and the first to expire named:
// a restore puts them back, and health and verify say when they run out.
func TestStaticResourcesReportTheirCertificatesAndRevisions(t *testing.T) {
	now := time.Now().Truncate(time.Second).UTC()
	files := map[string][]byte{}
	for _, n := range fourPods("7") {
		files[n] = []byte("x")
	}
	files["static-pod-resources/kube-apiserver-pod-7/secrets/etcd-client/tls.crt"] = certPEM(t, "system:etcd-client", now.Add(24*time.Hour))
	// A bundle of two: the second expires first.
	files["static-pod-resources/kube-apiserver-pod-7/configmaps/etcd-serving-ca/ca-bundle.crt"] = append(certPEM(t, "etcd-signer", now.Add(48*time.Hour)), certPEM(t, "old-signer", now.Add(time.Hour))...)
	files["static-pod-resources/etcd-pod-7/secrets/etcd-all-certs/broken.crt"] = []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")

	path := filepath.Join(t.TempDir(), "static_kuberesources_2026-12-02_051500.tar.gz")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(f)
	tw := tar.NewWriter(zw)
	for name, data := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []interface{ Close() error }{tw, zw, f} {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	_, _, rep, err := checkTarGz(path, false)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Certificates != 3 || !rep.FirstExpiry.Equal(now.Add(time.Hour)) || rep.FirstExpiring != "static-pod-resources/kube-apiserver-pod-7/configmaps/etcd-serving-ca/ca-bundle.crt (old-signer)" {
		t.Errorf("report %+v: want 3 certificates, the first to expire old-signer's in an hour", rep)
	}
	for _, pod := range StaticPodOperators {
		if rep.Revisions[pod] != 7 {
			t.Errorf("revisions %v: want 7 for %s", rep.Revisions, pod)
		}
	}
	if rep.EncryptionConfig {
		t.Error("an encryption configuration reported where the archive has none")
	}
}

// A cut that spares the tar archive but not the gzip stream's end (its
// checksum and length) is damage too.
func TestStaticResourcesWithACutGzipTrailerAreDamaged(t *testing.T) {
	path := filepath.Join(t.TempDir(), "static_kuberesources_2026-12-02_051500.tar.gz")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(f)
	tw := tar.NewWriter(zw)
	for _, n := range fourPods("7") {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o600, Size: 1, Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []interface{ Close() error }{tw, zw, f} {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, _, err := checkTarGz(path, false); err != nil {
		t.Fatalf("the whole archive: %v", err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data[:len(data)-4], 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := checkTarGz(path, false); err == nil || !strings.Contains(err.Error(), "damaged archive") {
		t.Fatalf("an archive without its gzip length: %v", err)
	}
}
