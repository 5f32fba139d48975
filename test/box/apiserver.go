package box

import (
	"crypto/x509"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"k8s.io/apiserver/pkg/storage/storagebackend"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/klog/v2"
	apiservertesting "k8s.io/kubernetes/cmd/kube-apiserver/app/testing"
)

// Tokens of the users the box's apiserver knows. The administrator is in
// system:masters (cluster-admin); the developer has no role at all.
const (
	AdminToken     = "box-admin-token"
	DeveloperToken = "box-developer-token"
)

// apiServerFlags are the kube-apiserver flags the box needs: no endpoint
// reconciler and no service-account admission (no controllers run), the
// kubelet reached at its InternalIP, privileged pods allowed (debug-node pods
// are), RBAC so that "not cluster-admin" is real, and webhooks and
// aggregated APIs reached at their endpoints rather than their service IP,
// as OpenShift's kube-apiserver does (enable-aggregator-routing): the box
// has no service network, and a service IP dialled would leave the
// machine.
//
// Client certificates are what OpenShift's installer gives the
// administrator (auth/kubeconfig: user system:admin in system:masters,
// issued by admin-kubeconfig-signer); the kube-apiserver trusts the bundle
// that configmap openshift-kube-apiserver/client-ca holds.
func apiServerFlags(tokenFile, clientCAFile string) []string {
	return []string{
		"--client-ca-file=" + clientCAFile,
		"--endpoint-reconciler-type=none",
		"--disable-admission-plugins=ServiceAccount",
		"--kubelet-preferred-address-types=InternalIP",
		"--allow-privileged=true",
		"--enable-aggregator-routing=true",
		"--authorization-mode=RBAC",
		"--token-auth-file=" + tokenFile,
	}
}

// loopbackToken is the box's own identity towards its apiserver: the
// simulators, kubelets and tests reach the API through its stable endpoint
// (kubeapiserver.go), so they cannot use a server's own loopback token,
// which a new server changes. It is system:apiserver in system:masters,
// as that loopback user is.
const loopbackToken = "box-loopback-token"

// startAPIServer starts a real kube-apiserver in this process on the given
// etcd, behind the stable endpoint that every client of the box names.
func (b *Box) startAPIServer(etcdEndpoints []string, etcdCertDir string) error {
	quietKlog()
	tokenFile := filepath.Join(b.privateDir, "tokens.csv")
	tokens := fmt.Sprintf("%s,admin,uid-admin,\"system:masters\"\n%s,developer,uid-developer,\n%s,system:apiserver,uid-loopback,\"system:masters\"\n",
		AdminToken, DeveloperToken, loopbackToken)
	if err := os.WriteFile(tokenFile, []byte(tokens), 0o600); err != nil {
		return err
	}
	if err := b.makeAdminIdentity(); err != nil {
		return err
	}
	clientCAFile := filepath.Join(b.privateDir, "client-ca.crt")
	if err := os.WriteFile(clientCAFile, b.ClientCABundle(), 0o600); err != nil {
		return err
	}
	addr, reserved, release, err := apiEndpoint()
	if err != nil {
		return err
	}
	servingFlags, err := b.writeAPIServingCertificate(net.ParseIP(strings.Split(addr, ":")[0]))
	if err != nil {
		return err
	}
	storage := storagebackend.NewDefaultConfig("/kubernetes.io", nil)
	storage.Transport.ServerList = etcdEndpoints
	storage.Transport.CertFile = filepath.Join(etcdCertDir, "client.crt")
	storage.Transport.KeyFile = filepath.Join(etcdCertDir, "client.key")
	storage.Transport.TrustedCAFile = filepath.Join(etcdCertDir, "ca.crt")
	flags := append(apiServerFlags(tokenFile, clientCAFile), servingFlags...)

	b.api = &kubeAPIServer{b: b, addr: addr, reserved: reserved, release: release, launch: func() (*apiservertesting.TestServer, error) {
		server, err := apiservertesting.StartTestServer(b.tb, apiservertesting.NewDefaultTestServerOptions(), flags, storage)
		quietKlog() // the test server reset it
		if err != nil {
			return nil, fmt.Errorf("start kube-apiserver: %w", err)
		}
		return &server, nil
	}}
	if err := b.api.up(); err != nil {
		return err
	}
	b.APIServerURL = b.api.url()
	b.loopback = &rest.Config{Host: b.APIServerURL, BearerToken: loopbackToken, TLSClientConfig: rest.TLSClientConfig{CAData: b.apiServerCA}, QPS: 1000, Burst: 10000}
	b.loopback.ContentType = "application/vnd.kubernetes.protobuf"
	b.loopback.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	b.Admin = &rest.Config{Host: b.APIServerURL, BearerToken: AdminToken, TLSClientConfig: rest.TLSClientConfig{CAData: b.apiServerCA}, QPS: 200, Burst: 400}
	b.Kubeconfig = filepath.Join(b.Dir, "kubeconfig")
	return b.WriteAdminKubeconfig(b.Kubeconfig)
}

// writeAPIServingCertificate issues the certificate every kube-apiserver
// of the box serves, from a signer of its own: the same across restarts,
// so that kubeconfigs keep trusting the API. It names the endpoint's
// address and localhost (what the hosts' localhost kubeconfigs ask for).
// It returns the flags that serve it.
func (b *Box) writeAPIServingCertificate(ip net.IP) ([]string, error) {
	signer, err := NewCA("kube-apiserver-lb-signer", 10*365*24*time.Hour)
	if err != nil {
		return nil, err
	}
	serving, err := signer.Issue(CertSpec{CommonName: "api-int", DNSNames: []string{"localhost"}, IPs: []net.IP{ip},
		Usages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	if err != nil {
		return nil, err
	}
	cert, key := filepath.Join(b.privateDir, "apiserver-serving.crt"), filepath.Join(b.privateDir, "apiserver-serving.key")
	if err := os.WriteFile(cert, serving.CertPEM, 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(key, serving.KeyPEM, 0o600); err != nil {
		return nil, err
	}
	b.apiServerCA = signer.CertPEM
	return []string{"--tls-cert-file=" + cert, "--tls-private-key-file=" + key}, nil
}

// AdminUser is the administrator of the installer's kubeconfig.
const AdminUser = "system:admin"

// makeAdminIdentity makes the installer's administrator: a signer valid
// for ten years and the system:admin client certificate it issues.
func (b *Box) makeAdminIdentity() error {
	now := time.Now()
	signer, err := NewCAValidFor("admin-kubeconfig-signer", now.Add(-time.Hour), now.Add(10*365*24*time.Hour))
	if err != nil {
		return err
	}
	admin, err := signer.Issue(CertSpec{CommonName: AdminUser, Organization: []string{"system:masters"},
		Usages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, NotAfter: signer.Cert.NotAfter})
	if err != nil {
		return err
	}
	b.adminSigner, b.adminCert = signer, admin
	return nil
}

// ClientCABundle is the kube-apiserver's client CA bundle: what
// openshift-kube-apiserver/client-ca holds.
func (b *Box) ClientCABundle() []byte { return b.adminSigner.CertPEM }

// IssueClientCertificate signs a client certificate that the box's
// kube-apiserver trusts, for user in groups.
func (b *Box) IssueClientCertificate(user string, groups ...string) (*CertKey, error) {
	return b.adminSigner.Issue(CertSpec{CommonName: user, Organization: groups, Usages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
}

// WriteAdminKubeconfig writes the installer's kubeconfig: the box's
// apiserver, authenticated by the system:admin client certificate.
func (b *Box) WriteAdminKubeconfig(path string) error {
	return b.WriteCertKubeconfig(path, b.adminCert)
}

// WriteCertKubeconfig writes a kubeconfig that authenticates with a client
// certificate.
func (b *Box) WriteCertKubeconfig(path string, ck *CertKey) error {
	user := ck.Cert.Subject.CommonName
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["box"] = &clientcmdapi.Cluster{Server: b.APIServerURL, CertificateAuthorityData: b.apiServerCA}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificateData: ck.CertPEM, ClientKeyData: ck.KeyPEM}
	cfg.Contexts[user] = &clientcmdapi.Context{Cluster: "box", AuthInfo: user, Namespace: "default"}
	cfg.CurrentContext = user
	return clientcmd.WriteToFile(*cfg, path)
}

// WriteKubeconfig writes a kubeconfig for the box's apiserver that
// authenticates with token (AdminToken or DeveloperToken).
func (b *Box) WriteKubeconfig(path, token string) error {
	user := "admin"
	if token == DeveloperToken {
		user = "developer"
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["box"] = &clientcmdapi.Cluster{Server: b.APIServerURL, CertificateAuthorityData: b.apiServerCA}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts[user] = &clientcmdapi.Context{Cluster: "box", AuthInfo: user, Namespace: "default"}
	cfg.CurrentContext = user
	return clientcmd.WriteToFile(*cfg, path)
}

var (
	klogMu        sync.Mutex
	klogFlagsOnce sync.Once
	klogFlags     flag.FlagSet
)

// quietKlog keeps the apiserver's and client-go's klog output off the
// test's stderr, at verbosity 0 (importing the apiserver's test helpers
// raises it to 5), sending it to the box's log instead. klog's settings are
// process-wide and boxes may start concurrently (parallel tests), hence the
// lock.
func quietKlog() {
	klogMu.Lock()
	defer klogMu.Unlock()
	klogFlagsOnce.Do(func() { klog.InitFlags(&klogFlags) })
	for k, v := range map[string]string{"v": "0", "logtostderr": "false", "alsologtostderr": "false", "stderrthreshold": "FATAL"} {
		_ = klogFlags.Set(k, v)
	}
	klog.SetOutput(boxLogWriter{})
}

// boxLogWriter writes to the current box log (see klogf).
type boxLogWriter struct{}

func (boxLogWriter) Write(p []byte) (int, error) {
	boxLogMu.Lock()
	defer boxLogMu.Unlock()
	return boxLog.Write(p)
}
