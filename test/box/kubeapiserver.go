package box

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	apiservertesting "k8s.io/kubernetes/cmd/kube-apiserver/app/testing"
)

// kubeAPIServer is the cluster's API as its clients reach it: one stable
// endpoint, the internal load balancer (api-int) that every kubeconfig,
// kubelet and simulator names, in front of the box's in-process
// kube-apiserver.
//
// On a real cluster the API is the control-plane hosts' kube-apiserver
// static pods. So here the in-process server runs while some host runs the
// kube-apiserver static pod: when no host does any more (a restore moves
// kube-apiserver-pod.yaml aside on every host, every control-plane machine
// is off) the server stops and the endpoint refuses connections; when a
// host runs it again and etcd has a quorum, a new server starts on what
// etcd then holds, restored data included, with an empty watch cache as a
// kube-apiserver that starts. A server whose etcd lost its quorum is kept
// running, failing its requests, as a real one does.
type kubeAPIServer struct {
	b    *Box
	addr string // the endpoint's host:port, the same for the box's life
	// reserved is the endpoint's listener from its reservation until the
	// first server takes it; release gives the port up at the box's end.
	reserved net.Listener
	release  func()

	mu     sync.Mutex
	front  *relay // nil while no server runs
	server *apiservertesting.TestServer
	starts int
	// downSince is when the API last stopped serving: the server stopped,
	// or, before that, its etcd lost quorum (every write fails, the
	// controllers' lease renewals with them). unservedSince is when the
	// running server's etcd was first seen without quorum, lastQuorumCheck
	// when it was last looked at.
	downSince, unservedSince, lastQuorumCheck time.Time
	// startedAt is when the running server started; seenFatals the count
	// of fatal errors it was last checked against (restartIfCrashed).
	startedAt  time.Time
	seenFatals int64
	// launch starts an in-process server on the box's etcd.
	launch func() (*apiservertesting.TestServer, error)
}

// apiServerSyncPeriod is how often the supervisor compares the hosts'
// kube-apiserver static pods with the server.
const apiServerSyncPeriod = 200 * time.Millisecond

// up starts a server and opens the endpoint on it.
func (s *kubeAPIServer) up() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.server != nil {
		return nil
	}
	server, err := s.launch()
	if err != nil {
		return err
	}
	target := server.ClientConfig.Host
	if u, err := url.Parse(target); err == nil && u.Host != "" {
		target = u.Host
	}
	var front *relay
	if s.reserved != nil {
		front, s.reserved = newRelayOn(s.reserved, target), nil
	} else {
		// The port was ours a moment ago; a listener closing lingers briefly.
		for i := 0; ; i++ {
			if front, err = newRelay(s.addr, target); err == nil || i == 50 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if err != nil {
		server.TearDownFn()
		return fmt.Errorf("the API endpoint %s: %w", s.addr, err)
	}
	s.server, s.front, s.startedAt = server, front, time.Now()
	s.starts++
	return nil
}

// down closes the endpoint (open connections dropped, new ones refused)
// and stops the server.
func (s *kubeAPIServer) down() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.front != nil {
		s.front.Close()
		s.front = nil
	}
	if s.server != nil {
		s.server.TearDownFn()
		s.server = nil
		s.downSince = time.Now()
		if !s.unservedSince.IsZero() {
			s.downSince = s.unservedSince
		}
		s.unservedSince = time.Time{}
	}
}

// outage is how long the API was down before the server that runs now.
func (s *kubeAPIServer) outage() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.downSince.IsZero() {
		return 0
	}
	return time.Since(s.downSince)
}

// releasePort gives the endpoint's port up, at the box's end.
func (s *kubeAPIServer) releasePort() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reserved != nil {
		s.reserved.Close()
		s.reserved = nil
	}
	if s.release != nil {
		s.release()
		s.release = nil
	}
}

func (s *kubeAPIServer) running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.server != nil
}

// APIServerStarts is how many times the box's kube-apiserver has started: 1 until
// the API went away and came back.
func (b *Box) APIServerStarts() int {
	b.api.mu.Lock()
	defer b.api.mu.Unlock()
	return b.api.starts
}

// run keeps the server in step with the hosts, until ctx ends.
func (s *kubeAPIServer) run(ctx context.Context) {
	ticker := time.NewTicker(apiServerSyncPeriod)
	defer ticker.Stop()
	for {
		s.sync(ctx)
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

func (s *kubeAPIServer) sync(ctx context.Context) {
	s.watchQuorum(ctx)
	hosts := s.b.hostsRunningKubeAPIServer()
	s.restartIfCrashed(ctx)
	switch running := s.running(); {
	case running && len(hosts) == 0:
		klogf("kube-apiserver: no control-plane host runs it any more; the API is down")
		s.down()
	case !running && len(hosts) > 0:
		if !s.b.etcdHasQuorum(ctx) {
			return
		}
		klogf("kube-apiserver: %s runs it and etcd has a quorum; starting", strings.Join(hosts, ", "))
		outage := s.outage()
		if err := s.up(); err != nil {
			klogf("kube-apiserver: %v", err)
			return
		}
		klogf("kube-apiserver: serving again after %s", outage.Round(time.Second))
		go s.b.judgeSilentNodes(ctx)
		if outage >= s.b.leaderRenewDeadline() {
			go s.b.restartCaches(ctx)
		}
	}
	s.b.syncNodeAPIServers(hosts)
}

// judgeSilentNodes is the node lifecycle controller of a control plane
// that came back (a restore, a cold start): it judges every node afresh,
// and a node whose kubelet does not run, however Ready the restored data
// or the last status says it is, turns NotReady once the grace period
// (Options.NodeMonitorGracePeriod; at once by default) has passed without
// its Lease renewed, as the new kube-controller-manager of a real cluster
// does. A machine that went down while the API did not answer (the hosts a
// quorum was lost with) is only seen down this way.
func (b *Box) judgeSilentNodes(ctx context.Context) {
	if g := b.opts.NodeMonitorGracePeriod; g > 0 && !sleepCtx(ctx, g) {
		return
	}
	for _, n := range b.NodeList() {
		if n.Kubelet == nil || n.Kubelet.serviceActive() {
			continue
		}
		if err := n.Kubelet.setNodeReady(ctx, false); err == nil {
			klogf("node lifecycle: %s has not renewed its lease: NotReady", n.Name)
		}
	}
}

// watchQuorum notes, every 2 s while a server runs, since when its etcd
// has had no quorum: the outage began then. When the quorum comes back
// after an outage that outlasted the leader-election renew deadline, the
// node lifecycle controller and the simulators start afresh.
func (s *kubeAPIServer) watchQuorum(ctx context.Context) {
	if !s.running() || time.Since(s.lastQuorumCheck) < 2*time.Second {
		return
	}
	s.lastQuorumCheck = time.Now()
	quorum := s.b.etcdHasQuorum(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case quorum:
		// A server that kept running through the outage (4.18 keeps its
		// kube-apiserver through a restore) serves again: the controllers
		// that lost their leases meanwhile start afresh, as after a
		// restart.
		if since := s.unservedSince; !since.IsZero() && time.Since(since) >= s.b.leaderRenewDeadline() {
			klogf("kube-apiserver: etcd has a quorum again after %s", time.Since(since).Round(time.Second))
			go s.b.judgeSilentNodes(ctx)
			go s.b.restartCaches(ctx)
		}
		s.unservedSince = time.Time{}
	case s.unservedSince.IsZero():
		s.unservedSince = time.Now()
	}
}

// hostsRunningKubeAPIServer names the control-plane hosts whose kubelet
// runs the kube-apiserver static pod.
func (b *Box) hostsRunningKubeAPIServer() []string {
	var names []string
	for _, n := range b.masters() {
		if n.Kubelet != nil && n.Kubelet.runsStaticPod("kube-apiserver") {
			names = append(names, n.Name)
		}
	}
	sort.Strings(names)
	return names
}

// runsStaticPod says whether the containers of static pod name run.
func (k *FakeKubelet) runsStaticPod(name string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.staticRunning[name] != nil
}

// etcdHasQuorum says whether etcd answers a linearizable read, what a
// kube-apiserver needs to start.
func (b *Box) etcdHasQuorum(ctx context.Context) bool {
	c, err := b.etcdPKI.newEtcdClient(b.etcdEndpoints()...)
	if err != nil {
		return false
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err = c.Get(ctx, "health")
	return err == nil
}

// endpointPorts are where the stable endpoints' ports are chosen: below
// the kernel's ephemeral range (32768 and up), which the servers' own
// listeners (port 0) and outgoing connections draw from, so that nothing
// takes the port while the endpoint is closed during an outage.
const endpointPortLow, endpointPortHigh = 20000, 32000

// apiEndpoint reserves the stable endpoint's address for the box's life:
// a loopback port, listened on until the first server takes the listener,
// and locked by a file lock that boxes in every test process honour, so
// that no other box picks it while it is closed. release unlocks it.
func apiEndpoint() (addr string, ln net.Listener, release func(), err error) {
	dir := filepath.Join(os.TempDir(), "oc-recover-box-ports")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", nil, nil, err
	}
	for range 200 {
		port := endpointPortLow + rand.IntN(endpointPortHigh-endpointPortLow)
		f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(port)+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return "", nil, nil, err
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
			f.Close() // another box's
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			f.Close() // something else's
			continue
		}
		return ln.Addr().String(), ln, func() { f.Close() }, nil
	}
	return "", nil, nil, fmt.Errorf("no free loopback port in %d-%d for the API endpoint", endpointPortLow, endpointPortHigh)
}

// syncNodeAPIServers opens the relay of each host that runs the
// kube-apiserver static pod (unless StopNodeAPIServer stopped it) and
// closes the others', so that a host's localhost kubeconfig reaches an
// apiserver exactly when its own static pod runs.
func (b *Box) syncNodeAPIServers(running []string) {
	want := map[string]bool{}
	for _, name := range running {
		want[name] = true
	}
	for _, n := range b.masters() {
		b.nodeAPI.mu.Lock()
		stopped := b.nodeAPI.stopped[n.Name]
		open := b.nodeAPI.relays[n.Name] != nil
		b.nodeAPI.mu.Unlock()
		switch {
		case want[n.Name] && !stopped && !open:
			if err := b.startNodeAPIServer(n); err != nil {
				klogf("kube-apiserver on %s: %v", n.Name, err)
			}
		case (!want[n.Name] || stopped) && open:
			b.closeNodeAPIServer(n.Name)
		}
	}
}

// apiServerURL is the endpoint's URL.
func (s *kubeAPIServer) url() string { return (&url.URL{Scheme: "https", Host: s.addr}).String() }
