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
	// quotaBytes is --quota-backend-bytes, fixed for the member's life as
	// the pod's environment fixes it for a real one.
	quotaBytes int64

	mu     sync.Mutex
	server *embed.Etcd
	relay  *relay
	// exitErr is why the server last stopped by itself.
	exitErr error

	// What the member knows of its membership, which decides how it may
	// start on an empty data dir (with data, etcd goes by its data).
	//
	// cluster is the initial-cluster string to start with.
	cluster string
	// joinExisting is set for a member added to a running cluster.
	joinExisting bool
	// admitted: cluster and joinExisting are fresh (the first members at
	// bootstrap, or a member the etcd operator has just added), so the
	// member may start on an empty data dir. Starting on one uses the
	// admission up: an emptied data dir needs a new one.
	admitted bool
	// removed: the etcd operator found the member gone from the cluster;
	// whatever data it has belongs to a member that no longer exists.
	removed bool
}

// memberState is what the etcd container's start finds of its membership.
type memberState int

const (
	memberMayStart memberState = iota
	// memberAwaitingAdmission: an empty data dir and no membership to join
	// yet. The real etcd pod waits in its discovery step.
	memberAwaitingAdmission
	// memberRemoved: data of a member the cluster has removed; etcd would
	// refuse it.
	memberRemoved
)

// crashLoopMarker in a member's data dir makes its etcd container
// crash-loop: the fault follows the data, as a corrupt data dir does.
const crashLoopMarker = ".box-crash-loop"

// newEtcdMember makes the member of a control-plane node, which cannot
// start until it has an admission (admit) or data.
func newEtcdMember(name string, ip net.IP, certDir, dataDir, logFile string, quotaBytes int64) *EtcdMember {
	return &EtcdMember{Name: name, IP: ip, certDir: certDir, dataDir: dataDir, logFile: logFile, quotaBytes: quotaBytes}
}

// hasData says whether the data dir holds a member (etcd's member/ dir).
func (m *EtcdMember) hasData() bool {
	fi, err := os.Stat(filepath.Join(m.dataDir, "member"))
	return err == nil && fi.IsDir()
}

// crashLooping says whether the crash-loop fault is in the data dir.
func (m *EtcdMember) crashLooping() bool {
	_, err := os.Stat(filepath.Join(m.dataDir, crashLoopMarker))
	return err == nil
}

// setCrashLoop puts the crash-loop fault in the data dir, or takes it out.
func (m *EtcdMember) setCrashLoop(on bool) error {
	path := filepath.Join(m.dataDir, crashLoopMarker)
	if !on {
		if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
			return err
		}
		return nil
	}
	if err := os.MkdirAll(m.dataDir, 0o700); err != nil {
		return err
	}
	return os.WriteFile(path, []byte("etcd exits at start: injected fault\n"), 0o600)
}

// membership is what the member's start would find.
func (m *EtcdMember) membership() memberState {
	data := m.hasData()
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case data && m.removed:
		return memberRemoved
	case !data && !m.admitted:
		return memberAwaitingAdmission
	}
	return memberMayStart
}

// admit records that the member was added to a running cluster whose
// members (this one included) initialCluster lists: it may start, and
// joins that cluster.
func (m *EtcdMember) admit(initialCluster string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cluster, m.joinExisting, m.admitted, m.removed = initialCluster, true, true, false
}

// markRemoved records that the member is no longer in the cluster.
func (m *EtcdMember) markRemoved() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.removed, m.admitted = true, false
}

// isRemoved says whether the etcd operator found the member removed.
func (m *EtcdMember) isRemoved() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.removed
}

// exitError is why the member last stopped by itself.
func (m *EtcdMember) exitError() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.exitErr
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

// Running reports whether the server is up. A server that stopped by
// itself (etcd stops a member removed from its cluster) is cleaned up here.
func (m *EtcdMember) Running() bool {
	m.mu.Lock()
	e, r := m.server, m.relay
	m.mu.Unlock()
	if e == nil {
		return false
	}
	select {
	case <-e.Server.StopNotify():
	default:
		return true
	}
	m.mu.Lock()
	if m.server != e {
		m.mu.Unlock()
		return m.server != nil
	}
	m.server, m.relay = nil, nil
	m.exitErr = fmt.Errorf("etcd member %s stopped", m.Name)
	select {
	case err := <-e.Err():
		m.exitErr = err
	default:
	}
	m.mu.Unlock()
	if r != nil {
		r.Close()
	}
	e.Close()
	return false
}

// Start starts the member from its data directory. On an empty one it
// needs an admission: it creates a new cluster with the other first members,
// or joins the running cluster the etcd operator added it to. It does not
// wait for the cluster to be ready: a lone member of a three-member cluster
// cannot be.
func (m *EtcdMember) Start() error {
	data := m.hasData()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.server != nil {
		return nil
	}
	if !data && !m.admitted {
		return fmt.Errorf("etcd member %s: not a member of any cluster yet", m.Name)
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
	// The etcd operator's ETCD_QUOTA_BACKEND_BYTES, not etcd's own 2 GiB.
	cfg.QuotaBackendBytes = m.quotaBytes
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
	m.server, m.relay, m.exitErr = e, r, nil
	if !data {
		m.admitted = false
	}
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
	// published are the issued certificates that a secret has held.
	published map[string]bool
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
		Logger:      etcdClientLogger(),
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

// secretCert is the certificate for a missing etcd-<kind>-<node> secret: the
// one already issued if no secret has held it yet (a new node's, which its
// host already has), otherwise a new one, as the etcd operator's cert
// signer issues when a secret is deleted.
func (p *etcdTLS) secretCert(kind, node string, ip net.IP) (*CertKey, error) {
	key := kind + "/" + node
	p.mu.Lock()
	if p.published == nil {
		p.published = map[string]bool{}
	}
	if p.published[key] {
		delete(p.issued, key)
	}
	p.published[key] = true
	p.mu.Unlock()
	return p.nodeCert(kind, node, ip)
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
		if err := writeFileAtomic(filepath.Join(dir, name), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}
