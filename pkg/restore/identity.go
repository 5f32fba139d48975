package restore

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"k8s.io/client-go/rest"
)

// A restore rewinds everything the API knows to the backup, including who
// may log in. The tool needs the API again once the restored cluster
// answers (CSRs, the quorum-guard override, the redeployments), so before
// anything is changed it proves that its own identity will still be
// accepted then.

// Identity is how the tool authenticates to the API.
type Identity struct {
	// Kind is client-certificate, oauth-token, token, exec, auth-provider,
	// basic or none.
	Kind string
	// Cert is the client certificate (Kind client-certificate).
	Cert *x509.Certificate
	// token is the bearer token; never printed.
	token string
}

// OAuthTokenPrefix starts the access tokens the OpenShift OAuth server
// issues (oc login); the object that records one is named sha256~ and the
// unpadded URL-safe base64 of the sha256 of the rest.
const OAuthTokenPrefix = "sha256~"

// IdentityOf reads how cfg authenticates.
func IdentityOf(cfg *rest.Config) (Identity, error) {
	switch {
	case cfg.ExecProvider != nil:
		return Identity{Kind: "exec"}, nil
	case cfg.AuthProvider != nil:
		return Identity{Kind: "auth-provider"}, nil
	}
	certPEM := cfg.TLSClientConfig.CertData
	if len(certPEM) == 0 && cfg.TLSClientConfig.CertFile != "" {
		data, err := os.ReadFile(cfg.TLSClientConfig.CertFile)
		if err != nil {
			return Identity{}, fmt.Errorf("read the kubeconfig's client certificate: %w", err)
		}
		certPEM = data
	}
	if len(certPEM) > 0 {
		block, _ := pem.Decode(certPEM)
		if block == nil {
			return Identity{}, errors.New("the kubeconfig's client certificate is not PEM")
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return Identity{}, fmt.Errorf("the kubeconfig's client certificate: %w", err)
		}
		return Identity{Kind: "client-certificate", Cert: cert}, nil
	}
	token := cfg.BearerToken
	if token == "" && cfg.BearerTokenFile != "" {
		data, err := os.ReadFile(cfg.BearerTokenFile)
		if err != nil {
			return Identity{}, fmt.Errorf("read the kubeconfig's token file: %w", err)
		}
		token = strings.TrimSpace(string(data))
	}
	switch {
	case strings.HasPrefix(token, OAuthTokenPrefix):
		return Identity{Kind: "oauth-token", token: token}, nil
	case token != "":
		return Identity{Kind: "token", token: token}, nil
	case cfg.Username != "":
		return Identity{Kind: "basic"}, nil
	}
	return Identity{Kind: "none"}, nil
}

// OAuthTokenKey is the etcd key of the object that records an OAuth access
// token, where the OpenShift OAuth API server stores it; "" for any other
// identity.
func (id Identity) OAuthTokenKey() string {
	if id.Kind != "oauth-token" {
		return ""
	}
	sum := sha256.Sum256([]byte(strings.TrimPrefix(id.token, OAuthTokenPrefix)))
	return "/openshift.io/oauth/accesstokens/" + OAuthTokenPrefix + base64.RawURLEncoding.EncodeToString(sum[:])
}

// Survival is the verdict on whether an identity outlives the restore.
type Survival struct {
	OK bool
	// Why says what was checked, or why it will not do.
	Why string
}

// IdentitySurvives judges whether id is accepted by the restored cluster.
// A client certificate must chain to the client CA bundle that the backup
// holds (clientCA, from its snapshot), or, when the snapshot holds that
// bundle encrypted, to the live one (liveCA) through a CA that already
// existed when the backup was taken (takenAt). An OAuth token must be
// recorded in the snapshot (tokenInSnapshot): one issued after the backup
// does not exist once it is restored. Any other kind cannot be checked and
// is refused, with what to use instead.
func IdentitySurvives(id Identity, clientCA, liveCA []byte, clientCAEncrypted, tokenInSnapshot bool, takenAt, now time.Time) Survival {
	const instead = "use a kubeconfig with a client certificate that the backup trusts, such as the one the installer wrote (auth/kubeconfig, user system:admin)"
	switch id.Kind {
	case "client-certificate":
		subject := "client certificate " + id.Cert.Subject.CommonName
		if now.After(id.Cert.NotAfter) {
			return Survival{Why: fmt.Sprintf("the %s expired on %s; %s", subject, id.Cert.NotAfter.UTC().Format(time.RFC3339), instead)}
		}
		bundle, source := clientCA, "the backup's client CA bundle (openshift-kube-apiserver/client-ca in its snapshot)"
		if len(bundle) == 0 && clientCAEncrypted {
			bundle, source = liveCA, "the live client CA bundle (the backup holds it encrypted)"
		}
		if len(bundle) == 0 {
			return Survival{Why: fmt.Sprintf("the backup holds no client CA bundle (openshift-kube-apiserver/client-ca) to check the %s against; %s", subject, instead)}
		}
		issuer, err := chainsTo(id.Cert, bundle, now)
		if err != nil {
			return Survival{Why: fmt.Sprintf("%s does not trust the %s (issued by %s): %v; the restored cluster would refuse it. %s", source, subject, id.Cert.Issuer.CommonName, err, instead)}
		}
		if len(clientCA) == 0 && issuer.NotBefore.After(takenAt) {
			return Survival{Why: fmt.Sprintf("the %s is issued by %s, a CA created on %s, after the backup was taken: the restored cluster would not know it. %s", subject, issuer.Subject.CommonName, issuer.NotBefore.UTC().Format(time.RFC3339), instead)}
		}
		return Survival{OK: true, Why: fmt.Sprintf("%s, issued by %s, which %s trusts", subject, issuer.Subject.CommonName, source)}
	case "oauth-token":
		if tokenInSnapshot {
			return Survival{OK: true, Why: "OAuth access token, which the backup's snapshot records"}
		}
		return Survival{Why: "the OAuth access token of this login was issued after the backup was taken (the snapshot does not record it): the restored cluster would not know it. " + instead}
	case "token":
		return Survival{Why: "a bearer token that is not an OAuth access token (a service account's, or a static one) cannot be checked against the backup. " + instead}
	case "exec", "auth-provider":
		return Survival{Why: "the kubeconfig gets its credentials from an " + id.Kind + " plugin, which cannot be checked against the backup. " + instead}
	case "basic":
		return Survival{Why: "basic authentication cannot be checked against the backup. " + instead}
	}
	return Survival{Why: "the kubeconfig has no credentials. " + instead}
}

// chainsTo verifies cert as a client certificate against the CAs of a PEM
// bundle and returns the CA it chains to.
func chainsTo(cert *x509.Certificate, bundle []byte, now time.Time) (*x509.Certificate, error) {
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(bundle) {
		return nil, errors.New("the bundle holds no certificate")
	}
	chains, err := cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil {
		return nil, err
	}
	chain := chains[0]
	return chain[len(chain)-1], nil
}
