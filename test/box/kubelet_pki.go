package box

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"
)

// The kubelet keeps its certificates in /var/lib/kubelet/pki: each pair it
// was issued in kubelet-{client,server}-<time>.pem (certificate and key),
// and kubelet-{client,server}-current.pem linking to the one in use. The
// box's kubelet serves with its serving certificate; it reaches the API as
// the box's loopback user, so its client certificate is one the box issues
// alongside, from the kubelets' signer, valid as long as the serving one
// (the box renews both together, certs.go).
const kubeletPKIDir = "var/lib/kubelet/pki"

// writePKI puts the kubelet's current certificates on its host, unless
// they are there already.
func (k *FakeKubelet) writePKI() error {
	k.mu.Lock()
	serving := k.serveCert
	k.mu.Unlock()
	if len(serving.Certificate) == 0 {
		return errors.New("no serving certificate")
	}
	leaf, err := x509.ParseCertificate(serving.Certificate[0])
	if err != nil {
		return err
	}
	dir := filepath.Join(k.Sandbox.Root, kubeletPKIDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if !sameCertificate(filepath.Join(dir, "kubelet-server-current.pem"), leaf) {
		data, err := pairPEM(serving)
		if err != nil {
			return err
		}
		if err := writeCurrentPEM(dir, "server", leaf.NotBefore, data); err != nil {
			return err
		}
	}
	if current := readLeaf(filepath.Join(dir, "kubelet-client-current.pem")); current != nil && current.NotAfter.Equal(leaf.NotAfter) {
		return nil
	}
	if k.csrSigner == nil {
		return errors.New("no signer for the kubelet's client certificate")
	}
	client, err := k.csrSigner.Issue(CertSpec{CommonName: "system:node:" + k.Node, Organization: []string{"system:nodes"},
		Usages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter})
	if err != nil {
		return err
	}
	return writeCurrentPEM(dir, "client", leaf.NotBefore, append(append([]byte{}, client.CertPEM...), client.KeyPEM...))
}

// writeCurrentPEM writes kubelet-<kind>-<time>.pem and points
// kubelet-<kind>-current.pem at it (relative, so that it resolves on the
// host and on the test machine alike).
func writeCurrentPEM(dir, kind string, issued time.Time, data []byte) error {
	name := fmt.Sprintf("kubelet-%s-%s.pem", kind, issued.UTC().Format("2006-01-02-15-04-05"))
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
		return err
	}
	link := filepath.Join(dir, "kubelet-"+kind+"-current.pem")
	tmp := link + ".tmp"
	_ = os.Remove(tmp)
	if err := os.Symlink(name, tmp); err != nil {
		return err
	}
	return os.Rename(tmp, link)
}

// pairPEM is a TLS pair as the kubelet stores it: certificate, then key.
func pairPEM(pair tls.Certificate) ([]byte, error) {
	var out []byte
	for _, der := range pair.Certificate {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	var key *pem.Block
	switch k := pair.PrivateKey.(type) {
	case *ecdsa.PrivateKey:
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			return nil, err
		}
		key = &pem.Block{Type: "EC PRIVATE KEY", Bytes: der}
	default:
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return nil, err
		}
		key = &pem.Block{Type: "PRIVATE KEY", Bytes: der}
	}
	return append(out, pem.EncodeToMemory(key)...), nil
}

func readLeaf(path string) *x509.Certificate {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil
	}
	return c
}

func sameCertificate(path string, leaf *x509.Certificate) bool {
	c := readLeaf(path)
	return c != nil && c.Equal(leaf)
}

// AgeKubeletCertificates gives node's kubelet certificates that expire at
// notAfter (in the past: expired), as a kubelet whose renewals were never
// approved holds: the kubelet serves with the new serving certificate
// (its service restarts, too quickly for the node to turn NotReady) and
// its host holds both. The kubelet's next renewal (ExpireKubeletCertificates)
// replaces them.
func (b *Box) AgeKubeletCertificates(ctx context.Context, node string, notAfter time.Time) error {
	n := b.Node(node)
	if n == nil || n.Kubelet == nil {
		return fmt.Errorf("no node %q in the box", node)
	}
	k := n.Kubelet
	notBefore := notAfter.Add(-kubeletCertValidity)
	serving, err := k.csrSigner.Issue(CertSpec{CommonName: "system:node:" + k.Node, Organization: []string{"system:nodes"},
		DNSNames: []string{k.Node}, IPs: []net.IP{k.IP}, Usages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, NotBefore: notBefore, NotAfter: notAfter})
	if err != nil {
		return err
	}
	pair, err := tls.X509KeyPair(serving.CertPEM, serving.KeyPEM)
	if err != nil {
		return err
	}
	k.mu.Lock()
	k.serveCert = pair
	k.mu.Unlock()
	if err := k.writePKI(); err != nil {
		return err
	}
	return k.RestartService(ctx)
}
