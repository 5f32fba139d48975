package box_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/oc-recover/oc-recover/test/box"
	"github.com/oc-recover/oc-recover/test/internal/boxtest"
)

// A third-party kubectl's `debug node --profile=sysadmin` lands a privileged
// pod on the node, and what it runs under chroot /host is that node's host.
func TestKubectlDebugNodeRunsOnThatNodesSandbox(t *testing.T) {
	node := shared.Node("master-1")
	marker := fmt.Sprintf("marker-%d", time.Now().UnixNano())
	if err := os.WriteFile(filepath.Join(node.Sandbox.Root, "home/core/marker"), []byte(marker+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := tools.Run(t, shared, "", "kubectl", "debug", "node/master-1", "--profile=sysadmin", "-i", "--image="+boxtest.DebugImage,
		"--", "chroot", "/host", "sh", "-c", "cat /etc/hostname /home/core/marker; hostname; ls /etc/kubernetes/manifests")
	if r.Code != 0 {
		t.Fatalf("kubectl debug failed: %s", r)
	}
	for _, want := range []string{"master-1\n" + marker + "\nmaster-1\n", "etcd-pod.yaml", "kube-apiserver-pod.yaml"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("kubectl debug output lacks %q:\n%s", want, r)
		}
	}
	// The same command on another node sees that node's host, not this one's.
	r = tools.Run(t, shared, "", "kubectl", "debug", "node/master-2", "--profile=sysadmin", "-i", "--image="+boxtest.DebugImage,
		"--", "chroot", "/host", "sh", "-c", "cat /etc/hostname; cat /home/core/marker || echo no-marker")
	if r.Code != 0 || !strings.Contains(r.Stdout, "master-2\n") || !strings.Contains(r.Stdout, "no-marker") {
		t.Errorf("debug pod on master-2 did not see master-2's own host: %s", r)
	}
	pods, err := shared.Kube.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range pods.Items {
		if p.Spec.NodeName == "master-1" && p.Spec.HostPID && p.Status.Phase == corev1.PodSucceeded {
			found = true
		}
	}
	if !found {
		t.Errorf("no completed node-debug pod on master-1 among %d pods", len(pods.Items))
	}
}

// `kubectl port-forward` to an etcd pod reaches that node's real member; with
// the etcd-client secret and the etcd-ca-bundle from the API, an etcd client
// verifies the server on 127.0.0.1 and lists every member.
func TestPortForwardToEtcdPodReachesItsMember(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	kubectl := exec.CommandContext(ctx, filepath.Join(tools.BinDir, "kubectl"), "port-forward", "-n", "openshift-etcd", "pod/etcd-master-0", ":2379")
	kubectl.Env = append(os.Environ(), "KUBECONFIG="+shared.Kubeconfig)
	out, err := kubectl.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := kubectl.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = kubectl.Process.Kill(); _ = kubectl.Wait() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("kubectl port-forward: %v", err)
	}
	m := regexp.MustCompile(`Forwarding from 127\.0\.0\.1:(\d+) -> 2379`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("unexpected port-forward output %q", line)
	}

	secret, err := shared.Kube.CoreV1().Secrets("openshift-etcd").Get(ctx, "etcd-client", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bundle, err := shared.Kube.CoreV1().ConfigMaps("openshift-etcd").Get(ctx, "etcd-ca-bundle", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(secret.Data["tls.crt"], secret.Data["tls.key"])
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(bundle.Data["ca-bundle.crt"])) {
		t.Fatal("etcd-ca-bundle holds no certificate")
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{"https://127.0.0.1:" + m[1]}, DialTimeout: 5 * time.Second,
		TLS: &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool}, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	members, err := cli.MemberList(ctx)
	if err != nil {
		t.Fatalf("member list through the port-forward: %v", err)
	}
	var names []string
	for _, mem := range members.Members {
		names = append(names, mem.Name)
	}
	if len(names) != 3 {
		t.Fatalf("members = %v, want master-0, master-1 and master-2", names)
	}
	for _, want := range []string{"master-0", "master-1", "master-2"} {
		if !strings.Contains(strings.Join(names, ","), want) {
			t.Errorf("member %s missing from %v", want, names)
		}
	}
	status, err := cli.Status(ctx, "https://127.0.0.1:"+m[1])
	if err != nil {
		t.Fatal(err)
	}
	if want := memberID(t, members, "master-0"); status.Header.MemberId != want {
		t.Errorf("port-forward to etcd-master-0 answered as member %x, want master-0's %x", status.Header.MemberId, want)
	}
	// And it is the etcd the apiserver stores the cluster in.
	resp, err := cli.Get(ctx, "/kubernetes.io/namespaces/openshift-etcd", clientv3.WithCountOnly())
	if err != nil || resp.Count != 1 {
		t.Errorf("the openshift-etcd namespace is not in this etcd: count=%v err=%v", resp, err)
	}
}

func memberID(t *testing.T, members *clientv3.MemberListResponse, name string) uint64 {
	t.Helper()
	for _, m := range members.Members {
		if m.Name == name {
			return m.ID
		}
	}
	t.Fatalf("no member %s", name)
	return 0
}

// A stopped machine: instance stopped, node NotReady and unreachable, member
// down, and the etcd operator says so in the words of OpenShift's
// documentation (4.5, Backup and restore, 2.2 "Identifying an unhealthy etcd
// member").
func TestStoppedMachineMakesItsMemberUnhealthy(t *testing.T) {
	t.Parallel()
	b := boxtest.StartBox(t, box.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := b.StopMachine(ctx, "master-1"); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitForEtcdMembersAvailable(ctx, "2 of 3 members are available, master-1 is unhealthy"); err != nil {
		t.Fatal(err)
	}
	node, err := b.Kube.CoreV1().Nodes().Get(ctx, "master-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ready := boxtest.NodeReady(node); ready != corev1.ConditionUnknown {
		t.Errorf("master-1 Ready = %s, want Unknown", ready)
	}
	if !hasTaint(node, corev1.TaintNodeUnreachable) {
		t.Errorf("master-1 lacks the unreachable taint: %v", node.Spec.Taints)
	}
	machine, err := b.Machine.MachineV1beta1().Machines("openshift-machine-api").Get(ctx, b.Node("master-1").MachineName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var ps struct{ InstanceState string }
	if err := yaml.Unmarshal(machine.Status.ProviderStatus.Raw, &ps); err != nil || ps.InstanceState != "stopped" {
		t.Errorf("instanceState = %q (%v), want stopped", ps.InstanceState, err)
	}
	// The kubelet is gone: exec into the node's pods fails.
	if r := tools.Run(t, b, "", "kubectl", "exec", "-n", "openshift-etcd", "etcd-master-1", "-c", "etcdctl", "--", "true"); r.Code == 0 {
		t.Errorf("exec on a stopped machine succeeded: %s", r)
	}

	if err := b.StartMachine(ctx, "master-1"); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitForEtcdMembersAvailable(ctx, "3 members are available"); err != nil {
		t.Fatal(err)
	}
}

// The sandbox's manifests dir drives the static pods: etcd-pod.yaml moved
// away (OpenShift 4.5 documentation, Backup and restore, 2.4.2) stops the member and its pod; moved back, both
// return.
func TestMovingEtcdManifestStopsAndStartsTheMember(t *testing.T) {
	t.Parallel()
	b := boxtest.StartBox(t, box.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if r := boxtest.HostRun(t, b, "master-2", "mkdir -p /var/lib/etcd-backup && mv /etc/kubernetes/manifests/etcd-pod.yaml /var/lib/etcd-backup/"); r.Code != 0 {
		t.Fatalf("move manifest: %s", r)
	}
	if err := b.WaitForEtcdMembersAvailable(ctx, "2 of 3 members are available, master-2 is unhealthy"); err != nil {
		t.Fatal(err)
	}
	if b.Node("master-2").Etcd.Running() {
		t.Error("master-2's member still runs without its manifest")
	}
	err := box.WaitFor(ctx, 30*time.Second, "etcd-master-2 pod gone", func(ctx context.Context) (bool, string, error) {
		p, err := b.EtcdPod(ctx, "master-2")
		if err != nil {
			return true, "", nil
		}
		return false, string(p.Status.Phase), nil
	})
	if err != nil {
		t.Error(err)
	}
	if r := boxtest.HostRun(t, b, "master-2", "mv /var/lib/etcd-backup/etcd-pod.yaml /etc/kubernetes/manifests/"); r.Code != 0 {
		t.Fatalf("move manifest back: %s", r)
	}
	if err := b.WaitForEtcdMembersAvailable(ctx, "3 members are available"); err != nil {
		t.Fatal(err)
	}
	p, err := b.EtcdPod(ctx, "master-2")
	if err != nil || p.Status.Phase != corev1.PodRunning {
		t.Errorf("etcd-master-2 not running again: %v %v", p, err)
	}
}

// A crash-looping etcd pod looks as in OpenShift's documentation (4.5, Backup
// and restore, 2.3 "Determining the state of the unhealthy etcd member"):
// Running phase, the etcd
// container in CrashLoopBackOff after an Error exit, restarts counting up.
func TestCrashLoopingEtcdPod(t *testing.T) {
	t.Parallel()
	b := boxtest.StartBox(t, box.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := b.CrashLoopEtcd("master-0", true); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitForEtcdMembersAvailable(ctx, "2 of 3 members are available, master-0 is unhealthy"); err != nil {
		t.Fatal(err)
	}
	err := box.WaitFor(ctx, 30*time.Second, "etcd container in CrashLoopBackOff with restarts", func(ctx context.Context) (bool, string, error) {
		p, err := b.EtcdPod(ctx, "master-0")
		if err != nil {
			return false, err.Error(), nil
		}
		for _, cs := range p.Status.ContainerStatuses {
			if cs.Name == "etcd" {
				w := cs.State.Waiting
				ok := w != nil && w.Reason == "CrashLoopBackOff" && cs.RestartCount > 1 &&
					cs.LastTerminationState.Terminated != nil && cs.LastTerminationState.Terminated.Reason == "Error"
				return ok, fmt.Sprintf("%+v restarts=%d", cs.State, cs.RestartCount), nil
			}
		}
		return false, "no etcd container status", nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.CrashLoopEtcd("master-0", false); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitForEtcdMembersAvailable(ctx, "3 members are available"); err != nil {
		t.Fatal(err)
	}
}

// Host commands run inside their node's sandbox and nowhere else: this
// machine's paths are out of reach, its system directories read-only.
func TestHostCommandsCannotWriteOutsideTheirSandbox(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "escaped")
	r := boxtest.HostRun(t, shared, "master-0", "echo escaped > "+outside)
	if r.Code == 0 {
		t.Errorf("writing %s from a host command succeeded: %s", outside, r)
	}
	if _, err := os.Stat(outside); !os.IsNotExist(err) {
		t.Fatalf("a host command wrote %s on the test machine", outside)
	}
	for _, cmd := range []string{"touch /usr/bin/escaped", "rm -f /etc/passwd", "mkdir /usr/lib/escaped"} {
		if r := boxtest.HostRun(t, shared, "master-0", cmd); r.Code == 0 {
			t.Errorf("%q succeeded on the host sandbox: %s", cmd, r)
		}
	}
	if _, err := os.Stat("/usr/bin/escaped"); err == nil {
		t.Fatal("a host command wrote /usr/bin/escaped on the test machine")
	}
	// What a host command does write stays in its own sandbox.
	if r := boxtest.HostRun(t, shared, "master-0", "echo inside > /home/core/inside && hostname"); r.Code != 0 || r.Stdout != "master-0\n" {
		t.Fatalf("host command on master-0: %s", r)
	}
	if data, err := os.ReadFile(filepath.Join(shared.Node("master-0").Sandbox.Root, "home/core/inside")); err != nil || string(data) != "inside\n" {
		t.Errorf("write inside the sandbox not found there: %q %v", data, err)
	}
	// The same through a debug pod: /host is the node's sandbox, and the
	// test machine is not reachable from it either.
	r = tools.Run(t, shared, "", "kubectl", "debug", "node/master-0", "--profile=sysadmin", "-i", "--image="+boxtest.DebugImage,
		"--", "chroot", "/host", "sh", "-c", "cat /home/core/inside; echo escaped > "+outside+" || echo refused")
	if !strings.Contains(r.Stdout, "inside\n") || !strings.Contains(r.Stdout, "refused") {
		t.Errorf("debug pod: %s", r)
	}
	if _, err := os.Stat(outside); !os.IsNotExist(err) {
		t.Fatalf("a debug pod wrote %s on the test machine", outside)
	}
}
