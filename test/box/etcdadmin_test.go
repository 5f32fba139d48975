package box_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	operatorv1 "github.com/openshift/api/operator/v1"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	"github.com/oc-recover/oc-recover/test/box"
	"github.com/oc-recover/oc-recover/test/internal/boxtest"
)

// What an administrator does with etcdctl and oc, for the Machine API
// tests (box_machineapi_test.go).

func waitFor(t *testing.T, ctx context.Context, what string, cond func(context.Context) (bool, string)) {
	t.Helper()
	err := box.WaitFor(ctx, time.Minute, what, func(ctx context.Context) (bool, string, error) {
		ok, state := cond(ctx)
		return ok, state, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func memberNames(t *testing.T, b *box.Box) []string {
	t.Helper()
	var names []string
	for n := range boxtest.MemberIDs(t, b) {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// removeMember is `etcdctl member remove` of node's member.
func removeMember(t *testing.T, b *box.Box, node string) {
	t.Helper()
	id, ok := boxtest.MemberIDs(t, b)[node]
	if !ok {
		t.Fatalf("no member %s", node)
	}
	cli, err := b.EtcdClient()
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.MemberRemove(ctx, id); err != nil {
		t.Fatalf("member remove %x (%s): %v", id, node, err)
	}
}

func deleteNodeSecrets(t *testing.T, b *box.Box, node string) {
	t.Helper()
	for _, kind := range []string{"peer", "serving", "serving-metrics"} {
		if err := b.Kube.CoreV1().Secrets("openshift-etcd").Delete(context.Background(), "etcd-"+kind+"-"+node, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

func patchEtcd(t *testing.T, b *box.Box, patch string) {
	t.Helper()
	if _, err := b.Operator.OperatorV1().Etcds().Patch(context.Background(), "cluster", types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatalf("patch etcd/cluster %s: %v", patch, err)
	}
}

// replaceMachine is §2.4.1 step 3 with kubectl: save node's Machine as YAML,
// drop status, providerID, annotations, generation, resourceVersion and uid,
// give it the next index, delete the old Machine, apply the new one. It
// returns the new Machine's name.
func replaceMachine(t *testing.T, b *box.Box, node string) string {
	t.Helper()
	old := b.InfraID + "-" + node
	r := tools.Run(t, b, "", "kubectl", "get", "machine", "-n", "openshift-machine-api", old, "-o", "yaml")
	if r.Code != 0 {
		t.Fatalf("get machine: %s", r)
	}
	var obj map[string]any
	if err := yaml.Unmarshal([]byte(r.Stdout), &obj); err != nil {
		t.Fatal(err)
	}
	delete(obj, "status")
	spec := obj["spec"].(map[string]any)
	delete(spec, "providerID")
	meta := obj["metadata"].(map[string]any)
	for _, f := range []string{"annotations", "generation", "resourceVersion", "uid", "selfLink"} {
		delete(meta, f)
	}
	name := b.InfraID + "-master-3"
	meta["name"] = name
	data, err := yaml.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	if r := tools.Run(t, b, "", "kubectl", "delete", "machine", "-n", "openshift-machine-api", old, "--timeout=60s"); r.Code != 0 {
		t.Fatalf("delete machine: %s", r)
	}
	if r := tools.Run(t, b, string(data), "kubectl", "apply", "-f", "-"); r.Code != 0 {
		t.Fatalf("apply the new machine: %s", r)
	}
	return name
}

// waitForMachineRunning waits for phase Running and returns the phases seen
// on the way.
func waitForMachineRunning(t *testing.T, b *box.Box, name string) []string {
	t.Helper()
	var phases []string
	waitFor(t, context.Background(), "machine "+name+" Running", func(ctx context.Context) (bool, string) {
		m, err := b.Machine.MachineV1beta1().Machines("openshift-machine-api").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		phase := ""
		if m.Status.Phase != nil {
			phase = *m.Status.Phase
		}
		if phase != "" && (len(phases) == 0 || phases[len(phases)-1] != phase) {
			phases = append(phases, phase)
		}
		return phase == "Running" && m.Status.NodeRef != nil, phase
	})
	return phases
}

func operatorStatus(t *testing.T, b *box.Box, op string) *operatorv1.StaticPodOperatorStatus {
	t.Helper()
	ctx := context.Background()
	ops := b.Operator.OperatorV1()
	var st *operatorv1.StaticPodOperatorStatus
	switch op {
	case "etcd":
		o, err := ops.Etcds().Get(ctx, "cluster", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		st = &o.Status.StaticPodOperatorStatus
	case "kubeapiserver":
		o, err := ops.KubeAPIServers().Get(ctx, "cluster", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		st = &o.Status.StaticPodOperatorStatus
	case "kubecontrollermanager":
		o, err := ops.KubeControllerManagers().Get(ctx, "cluster", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		st = &o.Status.StaticPodOperatorStatus
	case "kubescheduler":
		o, err := ops.KubeSchedulers().Get(ctx, "cluster", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		st = &o.Status.StaticPodOperatorStatus
	}
	return st
}

func nodeStatus(st *operatorv1.StaticPodOperatorStatus, node string) *operatorv1.NodeStatus {
	for i := range st.NodeStatuses {
		if st.NodeStatuses[i].NodeName == node {
			return &st.NodeStatuses[i]
		}
	}
	return nil
}

// waitForNodesAtLatest waits until etcd's node statuses are exactly nodes,
// all at the latest revision, and returns etcd's status.
func waitForNodesAtLatest(t *testing.T, b *box.Box, nodes ...string) *operatorv1.StaticPodOperatorStatus {
	t.Helper()
	var st *operatorv1.StaticPodOperatorStatus
	waitFor(t, context.Background(), "etcd at the latest revision on "+strings.Join(nodes, ", "), func(context.Context) (bool, string) {
		st = operatorStatus(t, b, "etcd")
		var at []string
		for _, ns := range st.NodeStatuses {
			if ns.CurrentRevision == st.LatestAvailableRevision {
				at = append(at, ns.NodeName)
			}
		}
		sort.Strings(at)
		return len(st.NodeStatuses) == len(nodes) && strings.Join(at, ",") == strings.Join(nodes, ","), fmt.Sprintf("%+v", st.NodeStatuses)
	})
	return st
}

func secretCert(t *testing.T, b *box.Box, name string) *x509.Certificate {
	t.Helper()
	s, err := b.Kube.CoreV1().Secrets("openshift-etcd").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return parseCert(t, s.Data["tls.crt"])
}

func parseCert(t *testing.T, pemData []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(pemData)
	if block == nil {
		t.Fatal("no PEM certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("parse certificate: %v", err)
	}
	return cert
}

// etcdClientTLS is a client's TLS for etcd as a user makes it: the
// etcd-client identity, trusting the etcd-ca-bundle.
func etcdClientTLS(t *testing.T, b *box.Box) *tls.Config {
	t.Helper()
	ctx := context.Background()
	client, err := b.Kube.CoreV1().Secrets("openshift-etcd").Get(ctx, "etcd-client", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bundle, err := b.Kube.CoreV1().ConfigMaps("openshift-etcd").Get(ctx, "etcd-ca-bundle", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(client.Data["tls.crt"], client.Data["tls.key"])
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(bundle.Data["ca-bundle.crt"]))
	return &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool, MinVersion: tls.VersionTLS12}
}

// servedCert is the certificate a member presents on ip:2379.
func servedCert(t *testing.T, b *box.Box, ip net.IP) *x509.Certificate {
	t.Helper()
	cfg := etcdClientTLS(t, b)
	cfg.ServerName = ip.String()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", net.JoinHostPort(ip.String(), "2379"), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

// endpointHealth is etcdctl endpoint health for one member: a
// linearizable read through it.
func endpointHealth(ctx context.Context, tlsConfig *tls.Config, urls []string) error {
	if len(urls) == 0 {
		return fmt.Errorf("no client URL (not started)")
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: urls, TLS: tlsConfig, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer c.Close()
	hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err = c.Get(hctx, "health")
	return err
}

func debugLog() io.Writer {
	if os.Getenv("BOX_DEBUG") != "" {
		return os.Stderr
	}
	return nil
}
