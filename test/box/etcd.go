package box

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
)

// EtcdMember is one real etcd server, run in this process for a node. Its data
// lives in the node's sandbox at /var/lib/etcd, as on an RHCOS host.
type EtcdMember struct {
	Name string
	IP   net.IP

	certDir string
	dataDir string
	logFile string
	cluster string // initial-cluster string of the cluster it was created in
	// joinExisting is set for a member added to a running cluster.
	joinExisting bool

	mu     sync.Mutex
	server *embed.Etcd
	relay  *relay
}

// listenClientURL is where the embedded server itself listens; clients
// reach it through the relay on ClientURL.
func (m *EtcdMember) listenClientURL() string {
	return fmt.Sprintf("https://%s", net.JoinHostPort(m.IP.String(), "12379"))
}

// ClientURL is where the member serves clients (port 2379 on the node's address).
func (m *EtcdMember) ClientURL() string {
	return fmt.Sprintf("https://%s", net.JoinHostPort(m.IP.String(), "2379"))
}

// PeerURL is where the member talks to its peers.
func (m *EtcdMember) PeerURL() string {
	return fmt.Sprintf("https://%s", net.JoinHostPort(m.IP.String(), "2380"))
}

// Running reports whether the server is up.
func (m *EtcdMember) Running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.server != nil
}

// Start starts the member from its data directory, creating it on first start.
// It does not wait for the cluster to be ready: a lone member of a
// three-member cluster cannot be.
func (m *EtcdMember) Start() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.server != nil {
		return nil
	}
	cfg := embed.NewConfig()
	cfg.Name = m.Name
	cfg.Dir = m.dataDir
	cfg.Logger = "zap"
	cfg.LogLevel = "warn"
	cfg.LogOutputs = []string{m.logFile}
	peer, _ := parseURL(m.PeerURL())
	client, _ := parseURL(m.ClientURL())
	listenClient, _ := parseURL(m.listenClientURL())
	cfg.ListenPeerUrls = []urlT{peer}
	cfg.AdvertisePeerUrls = []urlT{peer}
	cfg.ListenClientUrls = []urlT{listenClient}
	cfg.AdvertiseClientUrls = []urlT{client}
	cfg.InitialCluster = m.cluster
	cfg.InitialClusterToken = "etcd-cluster-in-a-box"
	cfg.ClusterState = embed.ClusterStateFlagNew
	if m.joinExisting {
		cfg.ClusterState = embed.ClusterStateFlagExisting
	}
	// OpenShift raises the backend quota to 8 GiB.
	cfg.QuotaBackendBytes = 8 << 30
	tlsInfo := func(kind string) (t transportTLSInfo) {
		t.CertFile = filepath.Join(m.certDir, kind+".crt")
		t.KeyFile = filepath.Join(m.certDir, kind+".key")
		t.TrustedCAFile = filepath.Join(m.certDir, "ca.crt")
		t.ClientCertAuth = true
		return t
	}
	cfg.ClientTLSInfo = tlsInfo("serving")
	cfg.PeerTLSInfo = tlsInfo("peer")
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("start etcd member %s: %w", m.Name, err)
	}
	r, err := newRelay(net.JoinHostPort(m.IP.String(), "2379"), net.JoinHostPort(m.IP.String(), "12379"))
	if err != nil {
		e.Close()
		return fmt.Errorf("etcd member %s client port: %w", m.Name, err)
	}
	m.server, m.relay = e, r
	return nil
}

// WaitReady waits until the member has joined a cluster with quorum.
func (m *EtcdMember) WaitReady(ctx context.Context) error {
	m.mu.Lock()
	e := m.server
	m.mu.Unlock()
	if e == nil {
		return fmt.Errorf("etcd member %s is not running", m.Name)
	}
	select {
	case <-e.Server.ReadyNotify():
		return nil
	case err := <-e.Err():
		return fmt.Errorf("etcd member %s: %w", m.Name, err)
	case <-ctx.Done():
		return fmt.Errorf("etcd member %s not ready: %w", m.Name, ctx.Err())
	}
}

// Stop stops the member, keeping its data.
func (m *EtcdMember) Stop() {
	m.mu.Lock()
	e, r := m.server, m.relay
	m.server, m.relay = nil, nil
	m.mu.Unlock()
	if r != nil {
		r.Close()
	}
	if e != nil {
		// A host losing power does not hand leadership over first.
		e.Server.HardStop()
		e.Close()
		<-e.Server.StopNotify()
	}
}

// etcdTLS is the client side of the box's etcd PKI.
type etcdTLS struct {
	ca     *CertKey
	client *CertKey // the etcd-client secret's certificate

	mu     sync.Mutex
	issued map[string]*CertKey
}

func (p *etcdTLS) clientTLSConfig() (*tls.Config, error) {
	pair, err := tls.X509KeyPair(p.client.CertPEM, p.client.KeyPEM)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(p.ca.Cert)
	return &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// newEtcdClient connects to the given member URLs with the etcd-client identity.
func (p *etcdTLS) newEtcdClient(endpoints ...string) (*clientv3.Client, error) {
	tc, err := p.clientTLSConfig()
	if err != nil {
		return nil, err
	}
	return clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		TLS:         tc,
		DialTimeout: 2 * time.Second,
		Logger:      quietZap(),
	})
}

// nodeCert returns the member certificate of the given kind (peer, serving,
// serving-metrics) for node, issuing it on first use so that the secret, the
// host's copy and the running server all hold the same one.
func (p *etcdTLS) nodeCert(kind, node string, ip net.IP) (*CertKey, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	key := kind + "/" + node
	if ck, ok := p.issued[key]; ok {
		return ck, nil
	}
	dns, ips := etcdServingSANs(ip)
	cn := map[string]string{"peer": "system:etcd-peer:", "serving": "system:etcd-server:", "serving-metrics": "system:etcd-metric:"}[kind] + node
	org := map[string]string{"peer": "system:etcd-peers", "serving": "system:etcd-servers", "serving-metrics": "system:etcd-metrics"}[kind]
	ck, err := p.ca.Issue(CertSpec{CommonName: cn, Organization: []string{org}, DNSNames: dns, IPs: ips,
		Usages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}})
	if err != nil {
		return nil, err
	}
	if p.issued == nil {
		p.issued = map[string]*CertKey{}
	}
	p.issued[key] = ck
	return ck, nil
}

// writeMemberCerts writes the member's serving and peer certificates where
// the embedded server reads them.
func (p *etcdTLS) writeMemberCerts(dir, node string, ip net.IP) error {
	serving, err := p.nodeCert("serving", node, ip)
	if err != nil {
		return err
	}
	peer, err := p.nodeCert("peer", node, ip)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	files := map[string][]byte{
		"ca.crt": p.ca.CertPEM, "serving.crt": serving.CertPEM, "serving.key": serving.KeyPEM,
		"peer.crt": peer.CertPEM, "peer.key": peer.KeyPEM,
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}
