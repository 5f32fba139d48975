package box_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/oc-recover/oc-recover/test/box"
	"github.com/oc-recover/oc-recover/test/internal/boxtest"
)

// The box's side of `member replace`: the procedures of the OpenShift 4.5
// documentation, Backup and restore, 2.4.1 "Replacing an unhealthy etcd
// member whose machine is not running or whose node is not ready" and 2.4.2
// "Replacing an unhealthy etcd member whose etcd pod is crashlooping" done by
// hand, through the API, etcd and the hosts, as an
// administrator would with oc and etcdctl. Each test breaks its own box.

const unsafeOverridePatch = `{"spec":{"unsupportedConfigOverrides":{"useUnsupportedUnsafeNonHANonProductionUnstableEtcd":true}}}`

// A stopped control-plane machine replaced as in §2.4.1, with the quorum
// guard's override set first: the new Machine is provisioned and runs, the
// old host and Node are gone, the etcd operator installs etcd on the new
// node, adds its member, and the cluster has three healthy members again.
func TestMachineReplacementByHand(t *testing.T) {
	t.Parallel()
	b := boxtest.StartBox(t, box.Options{Log: debugLog()})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	boxtest.StopMachineAndWait(t, b, "master-0")
	oldPeer := secretCert(t, b, "etcd-peer-master-0")

	removeMember(t, b, "master-0")
	deleteNodeSecrets(t, b, "master-0")
	// The cert signer covers every control-plane Node, ready or not: while
	// Node master-0 exists its secrets come back, with new certificates.
	waitFor(t, ctx, "etcd-peer-master-0 re-issued", func(ctx context.Context) (bool, string) {
		s, err := b.Kube.CoreV1().Secrets("openshift-etcd").Get(ctx, "etcd-peer-master-0", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return parseCert(t, s.Data["tls.crt"]).SerialNumber.Cmp(oldPeer.SerialNumber) != 0, "same certificate"
	})
	patchEtcd(t, b, unsafeOverridePatch)

	newName := replaceMachine(t, b, "master-0")
	if newName != b.InfraID+"-master-3" {
		t.Fatalf("new machine %s", newName)
	}
	phases := waitForMachineRunning(t, b, newName)
	if len(phases) < 2 || phases[0] == "Running" {
		t.Errorf("phases seen: %v, want Provisioning/Provisioned before Running", phases)
	}
	m, err := b.Machine.MachineV1beta1().Machines("openshift-machine-api").Get(ctx, newName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if m.Status.NodeRef == nil || m.Status.NodeRef.Name != "master-3" || m.Spec.ProviderID == nil || *m.Spec.ProviderID != "box:///master-3" ||
		len(m.Status.Addresses) == 0 || m.Annotations["machine.openshift.io/instance-state"] != "running" {
		t.Errorf("machine %s: nodeRef %v providerID %v addresses %v annotations %v", newName, m.Status.NodeRef, m.Spec.ProviderID, m.Status.Addresses, m.Annotations)
	}
	if _, err := b.Machine.MachineV1beta1().Machines("openshift-machine-api").Get(ctx, b.InfraID+"-master-0", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("old machine still there: %v", err)
	}
	if _, err := b.Kube.CoreV1().Nodes().Get(ctx, "master-0", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("node master-0 still there: %v", err)
	}
	if b.Node("master-0") != nil {
		t.Error("the box still has host master-0")
	}
	node, err := b.Kube.CoreV1().Nodes().Get(ctx, "master-3", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := node.Labels["node-role.kubernetes.io/master"]; !ok || boxtest.NodeReady(node) != corev1.ConditionTrue ||
		node.Annotations["machine.openshift.io/machine"] != "openshift-machine-api/"+newName {
		t.Errorf("node master-3: labels %v ready %s annotations %v", node.Labels, boxtest.NodeReady(node), node.Annotations)
	}

	if err := b.WaitForEtcdMembersAvailable(ctx, "3 members are available"); err != nil {
		t.Fatal(err)
	}
	if names := memberNames(t, b); strings.Join(names, ",") != "master-1,master-2,master-3" {
		t.Errorf("members: %v", names)
	}
	waitForNodesAtLatest(t, b, "master-1", "master-2", "master-3")
	pods, err := b.Kube.CoreV1().Pods("openshift-etcd").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var podNames []string
	for _, p := range pods.Items {
		podNames = append(podNames, p.Name)
		if p.Name == "etcd-master-3" && !boxtest.PodReady(&p) {
			t.Errorf("etcd-master-3 not ready: %+v", p.Status)
		}
	}
	if sort.Strings(podNames); strings.Join(podNames, ",") != "etcd-master-1,etcd-master-2,etcd-master-3" {
		t.Errorf("openshift-etcd pods: %v", podNames)
	}
	// master-3's member serves the certificates of its secrets.
	if served, want := servedCert(t, b, b.Node("master-3").IP), secretCert(t, b, "etcd-serving-master-3"); !served.Equal(want) {
		t.Errorf("master-3 serves %v, its secret holds %v", served.SerialNumber, want.SerialNumber)
	}
	for _, kind := range []string{"peer", "serving-metrics"} {
		secretCert(t, b, "etcd-"+kind+"-master-3")
	}

	// The new host goes with the box.
	dir, addr := b.Dir, net.JoinHostPort(b.Node("master-3").IP.String(), "2379")
	b.Stop()
	if procs := boxtest.ProcessesUnder(dir); len(procs) > 0 {
		t.Errorf("host processes left running: %v", procs)
	}
	for _, port := range []string{"2379", "2380", "10250"} {
		a := net.JoinHostPort(strings.Split(addr, ":")[0], port)
		ln, err := net.Listen("tcp", a)
		if err != nil {
			t.Errorf("%s still in use after teardown: %v", a, err)
			continue
		}
		_ = ln.Close()
	}
}

// The same without the override: the new node gets the other operators'
// static pods but no etcd, as the quorum guard will not roll etcd with two
// healthy members; with the override set the etcd operator completes.
func TestMachineReplacementWaitsForQuorumGuardOverride(t *testing.T) {
	t.Parallel()
	b := boxtest.StartBox(t, box.Options{Log: debugLog()})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	boxtest.StopMachineAndWait(t, b, "master-2")
	removeMember(t, b, "master-2")
	deleteNodeSecrets(t, b, "master-2")
	newName := replaceMachine(t, b, "master-2")
	waitForMachineRunning(t, b, newName)

	// Every other operator installs its latest revision on master-3 ...
	for _, op := range []string{"kubeapiserver", "kubecontrollermanager", "kubescheduler"} {
		waitFor(t, ctx, op+" on master-3", func(ctx context.Context) (bool, string) {
			st := operatorStatus(t, b, op)
			ns := nodeStatus(st, "master-3")
			return ns != nil && ns.CurrentRevision == st.LatestAvailableRevision, fmt.Sprintf("%+v", st.NodeStatuses)
		})
	}
	// ... and etcd does not, however long it is given.
	time.Sleep(2 * time.Second)
	st := operatorStatus(t, b, "etcd")
	if ns := nodeStatus(st, "master-3"); ns == nil || ns.CurrentRevision != 0 || nodeStatus(st, "master-2") != nil {
		t.Errorf("etcd node statuses: %+v", st.NodeStatuses)
	}
	if _, err := os.Stat(filepath.Join(b.Node("master-3").Sandbox.Root, "etc/kubernetes/manifests/etcd-pod.yaml")); !os.IsNotExist(err) {
		t.Errorf("etcd-pod.yaml on master-3 without the override: %v", err)
	}
	if _, err := b.EtcdPod(ctx, "master-3"); !apierrors.IsNotFound(err) {
		t.Errorf("etcd-master-3 pod without the override: %v", err)
	}
	if names := memberNames(t, b); strings.Join(names, ",") != "master-0,master-1" {
		t.Errorf("members without the override: %v", names)
	}

	patchEtcd(t, b, unsafeOverridePatch)
	if err := b.WaitForEtcdMembersAvailable(ctx, "3 members are available"); err != nil {
		t.Fatal(err)
	}
	if names := memberNames(t, b); strings.Join(names, ",") != "master-0,master-1,master-3" {
		t.Errorf("members: %v", names)
	}
	waitForNodesAtLatest(t, b, "master-0", "master-1", "master-3")
}

// A crash-looping etcd pod replaced as in §2.4.2: its manifest and data
// dir moved away on the host, its member removed, its secrets deleted, a
// redeployment forced (with the override: two healthy members). master-1
// comes back as a new member, with new certificates, and every member is
// healthy.
func TestCrashLoopingMemberReplacementByHand(t *testing.T) {
	t.Parallel()
	b := boxtest.StartBox(t, box.Options{Log: debugLog()})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	oldID := boxtest.MemberIDs(t, b)["master-1"]
	oldServing := secretCert(t, b, "etcd-serving-master-1")
	if err := b.CrashLoopEtcd("master-1", true); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitForEtcdMembersAvailable(ctx, "2 of 3 members are available, master-1 is unhealthy"); err != nil {
		t.Fatal(err)
	}

	if r := boxtest.HostRun(t, b, "master-1", "mkdir -p /var/lib/etcd-backup && mv /etc/kubernetes/manifests/etcd-pod.yaml /var/lib/etcd-backup/ && mv /var/lib/etcd/ /tmp"); r.Code != 0 {
		t.Fatalf("stop the etcd pod: %s", r)
	}
	removeMember(t, b, "master-1")
	deleteNodeSecrets(t, b, "master-1")
	patchEtcd(t, b, unsafeOverridePatch)
	before := operatorStatus(t, b, "etcd").LatestAvailableRevision
	patchEtcd(t, b, fmt.Sprintf(`{"spec":{"forceRedeploymentReason":"single-master-recovery-%s"}}`, time.Now().Format(time.RFC3339Nano)))

	if err := b.WaitForEtcdMembersAvailable(ctx, "3 members are available"); err != nil {
		t.Fatal(err)
	}
	ids := boxtest.MemberIDs(t, b)
	if id, ok := ids["master-1"]; !ok || id == oldID || len(ids) != 3 {
		t.Errorf("members %v: master-1 should be a new member (was %x)", ids, oldID)
	}
	// etcdctl endpoint health --cluster
	cli, err := b.EtcdClient()
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	list, err := cli.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tlsConfig := etcdClientTLS(t, b)
	for _, m := range list.Members {
		if err := endpointHealth(ctx, tlsConfig, m.ClientURLs); err != nil {
			t.Errorf("%s (%x) is unhealthy: %v", m.Name, m.ID, err)
		}
	}
	served, issued := servedCert(t, b, b.Node("master-1").IP), secretCert(t, b, "etcd-serving-master-1")
	if !served.Equal(issued) || served.SerialNumber.Cmp(oldServing.SerialNumber) == 0 {
		t.Errorf("master-1 serves %v; its secret holds %v, the old one %v", served.SerialNumber, issued.SerialNumber, oldServing.SerialNumber)
	}
	st := waitForNodesAtLatest(t, b, "master-0", "master-1", "master-2")
	if st.LatestAvailableRevision != before+1 {
		t.Errorf("etcd at revision %d, want %d", st.LatestAvailableRevision, before+1)
	}
	if r := boxtest.HostRun(t, b, "master-1", "ls /tmp/etcd /var/lib/etcd-backup"); r.Code != 0 || !strings.Contains(r.Stdout, "member") || !strings.Contains(r.Stdout, "etcd-pod.yaml") {
		t.Errorf("the moved data dir and manifest: %s", r)
	}
}

// A running member removed from the cluster stops (etcd does that), its pod
// shows the etcd container failing, and the etcd operator does not add it
// back while its old data is on the host.
func TestRemovedRunningMemberStaysOut(t *testing.T) {
	t.Parallel()
	b := boxtest.StartBox(t, box.Options{Log: debugLog()})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	removeMember(t, b, "master-2")
	waitFor(t, ctx, "master-2's member stopped", func(context.Context) (bool, string) {
		return !b.Node("master-2").Etcd.Running(), "running"
	})
	waitFor(t, ctx, "etcd-master-2's etcd container failing", func(ctx context.Context) (bool, string) {
		p, err := b.EtcdPod(ctx, "master-2")
		if err != nil {
			return false, err.Error()
		}
		for _, cs := range p.Status.ContainerStatuses {
			if cs.Name == "etcd" {
				return cs.State.Waiting != nil && cs.State.Waiting.Reason == "CrashLoopBackOff", fmt.Sprintf("%+v", cs.State)
			}
		}
		return false, "no etcd container"
	})
	if err := b.WaitForEtcdMembersAvailable(ctx, "2 members are available"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // longer than the container's back-off
	if names := memberNames(t, b); strings.Join(names, ",") != "master-0,master-1" || b.Node("master-2").Etcd.Running() {
		t.Errorf("members %v; master-2 running: %v", names, b.Node("master-2").Etcd.Running())
	}
}
