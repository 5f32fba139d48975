package health

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"os"
	"time"

	"k8s.io/client-go/rest"
)

// ServingChain is what the API server presented at the kubeconfig's
// address: its certificates, read without trusting them, and whether they
// verify against the kubeconfig's CA (VerifyErr).
type ServingChain struct {
	Server    string
	Chain     []*x509.Certificate
	VerifyErr error
	Err       error
}

// ReadServingChain connects to cfg's server without verifying what it
// presents (an expired certificate is what this is to report), and then
// verifies the chain against the kubeconfig's CA (the system's when the
// kubeconfig names none), for the server's name.
func ReadServingChain(ctx context.Context, cfg *rest.Config) ServingChain {
	out := ServingChain{Server: cfg.Host}
	u, err := url.Parse(cfg.Host)
	if err != nil || u.Host == "" {
		out.Err = fmt.Errorf("the kubeconfig's server %q is not a URL", cfg.Host)
		return out
	}
	if u.Scheme != "https" {
		out.Err = fmt.Errorf("the kubeconfig's server %s is not https: no certificate to read", cfg.Host)
		return out
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		host, port = u.Host, "443"
	}
	dialer := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second},
		Config: &tls.Config{InsecureSkipVerify: true, ServerName: host, MinVersion: tls.VersionTLS12}} //nolint:gosec // read, not trusted
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := dialer.DialContext(dctx, "tcp", net.JoinHostPort(host, port))
	if err != nil {
		out.Err = fmt.Errorf("connect to %s: %w", u.Host, err)
		return out
	}
	defer conn.Close()
	out.Chain = conn.(*tls.Conn).ConnectionState().PeerCertificates
	if len(out.Chain) == 0 {
		out.Err = fmt.Errorf("%s presented no certificate", u.Host)
		return out
	}
	roots, err := kubeconfigRoots(cfg)
	if err != nil {
		out.VerifyErr = err
		return out
	}
	inter := x509.NewCertPool()
	for _, c := range out.Chain[1:] {
		inter.AddCert(c)
	}
	name := host
	if cfg.TLSClientConfig.ServerName != "" {
		name = cfg.TLSClientConfig.ServerName
	}
	// At the leaf's own validity: whether it expired is judged apart.
	_, out.VerifyErr = out.Chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: name,
		CurrentTime: out.Chain[0].NotBefore.Add(time.Second)})
	return out
}

func kubeconfigRoots(cfg *rest.Config) (*x509.CertPool, error) {
	data := cfg.TLSClientConfig.CAData
	if len(data) == 0 && cfg.TLSClientConfig.CAFile != "" {
		var err error
		if data, err = os.ReadFile(cfg.TLSClientConfig.CAFile); err != nil {
			return nil, fmt.Errorf("read the kubeconfig's CA: %w", err)
		}
	}
	if len(data) == 0 {
		return x509.SystemCertPool()
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("the kubeconfig's certificate-authority-data holds no certificate")
	}
	return pool, nil
}

// ServingCertificate judges the API server's certificate as the
// kubeconfig's clients meet it: FAIL when it expired or cannot be read;
// WARN when less than a tenth of its validity is left (OpenShift rotates
// it long before), or when it does not verify against the kubeconfig's CA
// (clients that verify cannot connect: the kubeconfig is older than a
// re-issued CA, or it skips verification).
func ServingCertificate(s ServingChain, now time.Time) Result {
	r := Result{ID: "certs.apiserver", Severity: OK}
	if s.Err != nil {
		return CouldNotRun(r.ID, s.Err)
	}
	leaf := s.Chain[0]
	left, life := leaf.NotAfter.Sub(now), leaf.NotAfter.Sub(leaf.NotBefore)
	r.Evidence = append(r.Evidence, fmt.Sprintf("%s presents %q, issued by %q, valid %s to %s", s.Server, leaf.Subject.CommonName,
		leaf.Issuer.CommonName, day(leaf.NotBefore), day(leaf.NotAfter)))
	switch {
	case left <= 0:
		r.Severity = Fail
		r.Summary = fmt.Sprintf("the API server's certificate expired %s ago", roughly(-left))
		r.Fix = "recover the control-plane certificates (OpenShift 4.12 documentation, Backup and restore, 5.4.3 \"Recovering from expired control plane certificates\"): `oc recover certs recover`"
	case left < life/10:
		r.Severity = Warn
		r.Summary = fmt.Sprintf("the API server's certificate expires %s (in %s): its rotation is overdue", day(leaf.NotAfter), roughly(left))
		r.Fix = "see the kube-apiserver operator's CertRotation_*_Degraded conditions (staticpods.kubeapiserver)"
	default:
		r.Summary = fmt.Sprintf("the API server's certificate expires %s (in %s)", day(leaf.NotAfter), roughly(left))
	}
	if s.VerifyErr != nil {
		r.Severity = Worse(r.Severity, Warn)
		r.Evidence = append(r.Evidence, "it does not verify against the kubeconfig's CA: "+s.VerifyErr.Error())
		if r.Fix == "" {
			r.Fix = "log in again (`oc login`) or take the CA from the cluster's kubeconfig of the installation; a kubeconfig that skips verification trusts any server"
		}
	}
	return r
}
