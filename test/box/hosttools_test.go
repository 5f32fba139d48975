package box_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/oc-recover/oc-recover/test/box"
	"github.com/oc-recover/oc-recover/test/internal/boxtest"
)

// A unit started with systemd-run from a debug pod belongs to the host, not
// to the pod: deleting the pod kills the pod's own processes but not the
// unit, whose output journalctl keeps reading. This is what lets work that
// must outlive the API (a restore) be started through a debug pod.
func TestHostToolSystemdRunUnitOutlivesItsDebugPod(t *testing.T) {
	unit := fmt.Sprintf("box-test-outlive-%d", time.Now().UnixNano())
	podSleep := uniqueSleep()
	script := fmt.Sprintf("systemd-run --unit=%s --description='box test unit' sh -c 'echo started; while :; do echo tick; sleep 0.2; done' && exec %s", unit, podSleep)
	r := tools.Run(t, shared, "", "kubectl", "debug", "node/master-0", "--profile=sysadmin", "--image="+boxtest.DebugImage, "--", "chroot", "/host", "sh", "-c", script)
	if r.Code != 0 {
		t.Fatalf("kubectl debug: %s", r)
	}
	pod := debugPodName(t, r)
	t.Cleanup(func() { boxtest.HostRun(t, shared, "master-0", "systemctl stop "+unit) })
	boxtest.WaitForHost(t, shared, "master-0", "systemctl is-active "+unit, "active\n")
	waitForProcess(t, shared, podSleep, true)

	if r := tools.Run(t, shared, "", "kubectl", "delete", "pod", pod, "--wait=true"); r.Code != 0 {
		t.Fatalf("delete the debug pod: %s", r)
	}
	waitForProcess(t, shared, podSleep, false) // the pod's own process went with it
	if r := boxtest.HostRun(t, shared, "master-0", "systemctl is-active "+unit); r.Stdout != "active\n" || r.Code != 0 {
		t.Fatalf("the unit did not survive its debug pod: %s", r)
	}
	ticks := func() int {
		r := boxtest.HostRun(t, shared, "master-0", "journalctl --no-pager -u "+unit+".service")
		return strings.Count(r.Stdout, ": tick\n")
	}
	before := ticks()
	time.Sleep(time.Second)
	if after := ticks(); after <= before {
		t.Errorf("the unit's output stopped growing after its pod was deleted: %d ticks, then %d", before, after)
	}
	r = boxtest.HostRun(t, shared, "master-0", "journalctl -u "+unit+" --no-pager")
	for _, want := range []string{"systemd[1]: Started " + unit + ".service - box test unit.", " master-0 sh[", ": started\n"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("journalctl -u %s lacks %q:\n%s", unit, want, r.Stdout)
		}
	}

	if r := boxtest.HostRun(t, shared, "master-0", "systemctl stop "+unit+" && systemctl is-active "+unit); r.Code != 3 || r.Stdout != "inactive\n" {
		t.Errorf("systemctl stop, then is-active: %s", r)
	}
	if r := boxtest.HostRun(t, shared, "master-0", "journalctl -u "+unit+" | tail -1"); !strings.Contains(r.Stdout, "Stopped "+unit+".service - box test unit.") {
		t.Errorf("journal does not end with the unit stopping: %s", r)
	}
}

// systemd-run answers as systemd does: "Running as unit", a refusal for a
// unit name that is active, --wait with the unit's own exit status; and
// systemctl reports the unit's state.
func TestHostToolSystemdRunRefusesAnActiveUnitName(t *testing.T) {
	unit := fmt.Sprintf("box-test-dup-%d", time.Now().UnixNano())
	r := boxtest.HostRun(t, shared, "master-1", "systemd-run --unit="+unit+" --property=Restart=no sleep 600")
	if r.Code != 0 || r.Stderr != "Running as unit: "+unit+".service\n" {
		t.Fatalf("systemd-run: %s", r)
	}
	t.Cleanup(func() { boxtest.HostRun(t, shared, "master-1", "systemctl stop "+unit+"; systemctl reset-failed") })
	r = boxtest.HostRun(t, shared, "master-1", "systemd-run --unit="+unit+".service echo again")
	if r.Code != 1 || !strings.Contains(r.Stderr, "Unit "+unit+".service already exists.") {
		t.Errorf("a second unit of the same name: %s", r)
	}
	r = boxtest.HostRun(t, shared, "master-1", "systemctl status "+unit)
	for _, want := range []string{"● " + unit + ".service - sleep 600", "Transient: yes", "Active: active (running) since ", "(sleep)"} {
		if r.Code != 0 || !strings.Contains(r.Stdout, want) {
			t.Errorf("systemctl status lacks %q: %s", want, r)
		}
	}
	state, err := os.ReadFile(filepath.Join(shared.Node("master-1").Sandbox.Root, "run/box/units", unit))
	if err != nil || !strings.Contains(string(state), "ActiveState=active\n") {
		t.Errorf("unit state file: %q %v", state, err)
	}

	if r := boxtest.HostRun(t, shared, "master-1", "systemctl stop "+unit); r.Code != 0 {
		t.Fatalf("systemctl stop: %s", r)
	}
	// The name is free again; --wait reports the end and passes the exit
	// status on.
	r = boxtest.HostRun(t, shared, "master-1", "systemd-run --unit="+unit+" --wait sh -c 'echo done; exit 3'")
	for _, want := range []string{"Running as unit: " + unit + ".service\n", "Finished with result: exit-code\n", "Main processes terminated with: code=exited/status=3\n", "Service runtime: "} {
		if r.Code != 3 || !strings.Contains(r.Stderr, want) {
			t.Errorf("systemd-run --wait lacks %q: %s", want, r)
		}
	}
	if r := boxtest.HostRun(t, shared, "master-1", "systemctl is-active "+unit); r.Code != 3 || r.Stdout != "failed\n" {
		t.Errorf("is-active after a failed run: %s", r)
	}
	r = boxtest.HostRun(t, shared, "master-1", "journalctl -u "+unit)
	for _, want := range []string{"]: done\n", unit + ".service: Main process exited, code=exited, status=3/FAILURE", "Failed with result 'exit-code'."} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("journal lacks %q:\n%s", want, r.Stdout)
		}
	}
	if r := boxtest.HostRun(t, shared, "master-1", "journalctl -u no-such-unit-here"); r.Code != 0 || r.Stdout != "-- No entries --\n" {
		t.Errorf("journalctl of a unit that never ran: %s", r)
	}
	if r := boxtest.HostRun(t, shared, "master-1", "systemctl status no-such-unit-here"); r.Code != 4 || !strings.Contains(r.Stderr, "Unit no-such-unit-here.service could not be found.") {
		t.Errorf("systemctl status of no unit: %s", r)
	}
}

// The test machine's own systemd clients, which the bound system
// directories would offer by full path, are the box's stand-ins on a host
// and a refusal in a container: nothing in the box talks to the real init.
func TestHostToolSystemClientsByFullPathAreTheBoxs(t *testing.T) {
	if fi, err := os.Lstat("/usr/bin/systemctl"); err != nil || !fi.Mode().IsRegular() {
		t.Skip("no /usr/bin/systemctl on this machine to stand in for")
	}
	if r := boxtest.HostRun(t, shared, "master-2", "/usr/bin/systemctl is-active kubelet.service"); r.Code != 0 || r.Stdout != "active\n" {
		t.Errorf("/usr/bin/systemctl on a host is not the box's: %s", r)
	}
	r := tools.Run(t, shared, "", "kubectl", "debug", "node/master-2", "--profile=sysadmin", "-i", "--image="+boxtest.DebugImage,
		"--", "sh", "-c", "/usr/bin/systemctl --version; echo exit=$?")
	if !strings.Contains(r.Stdout, "System has not been booted with systemd") || !strings.Contains(r.Stdout, "exit=1") {
		t.Errorf("/usr/bin/systemctl in a container: %s", r)
	}
}

// crictl ps lists the node's containers as the real one does, so that the
// procedures' `crictl ps | grep etcd` checks work: etcd's four containers
// and the other control-plane pods, with the ids the pods' statuses carry;
// once etcd-pod.yaml is moved away, no etcd container is left.
func TestHostToolCrictlListsTheNodesContainers(t *testing.T) {
	t.Parallel()
	b := boxtest.StartBox(t, box.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	boxtest.WaitForHost(t, b, "master-0", "crictl ps --name '^etcd' -q | wc -l", "4\n")
	r := boxtest.HostRun(t, b, "master-0", "crictl ps")
	if r.Code != 0 {
		t.Fatalf("crictl ps: %s", r)
	}
	lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
	header := regexp.MustCompile(`^CONTAINER +IMAGE +CREATED +STATE +NAME +ATTEMPT +POD ID +POD$`)
	if !header.MatchString(lines[0]) {
		t.Errorf("header %q", lines[0])
	}
	pods := map[string]string{"etcd": "etcd-master-0", "etcdctl": "etcd-master-0", "etcd-metrics": "etcd-master-0", "etcd-readyz": "etcd-master-0",
		"kube-apiserver": "kube-apiserver-master-0", "kube-controller-manager": "kube-controller-manager-master-0", "kube-scheduler": "openshift-kube-scheduler-master-0"}
	for name, pod := range pods {
		row := regexp.MustCompile(`(?m)^[0-9a-f]{13} +\S+ +(Less than a second|1 second|\d+ seconds|About a minute|\d+ minutes) ago +Running +` + regexp.QuoteMeta(name) + ` +0 +[0-9a-f]{13} +` + pod + `$`)
		if !row.MatchString(r.Stdout) {
			t.Errorf("crictl ps has no running %s container of %s:\n%s", name, pod, r.Stdout)
		}
	}
	r = boxtest.HostRun(t, b, "master-0", "crictl ps --name '^etcd$' -q")
	etcdPod, err := b.EtcdPod(ctx, "master-0")
	if err != nil {
		t.Fatal(err)
	}
	for _, cs := range etcdPod.Status.ContainerStatuses {
		if cs.Name == "etcd" && cs.ContainerID != "cri-o://"+strings.TrimSpace(r.Stdout) {
			t.Errorf("crictl ps -q gives %q, the pod's status %q", r.Stdout, cs.ContainerID)
		}
	}
	r = boxtest.HostRun(t, b, "master-0", "crictl pods --namespace openshift-etcd")
	if !regexp.MustCompile(`(?m)^[0-9a-f]{13} +.* ago +Ready +etcd-master-0 +openshift-etcd +0 +\(default\)$`).MatchString(r.Stdout) {
		t.Errorf("crictl pods: %s", r)
	}

	// A debug pod's container is there too, until the pod is deleted.
	r = tools.Run(t, b, "", "kubectl", "debug", "node/master-0", "--profile=sysadmin", "--image="+boxtest.DebugImage, "--", "sleep", "600")
	if r.Code != 0 {
		t.Fatalf("kubectl debug: %s", r)
	}
	debugPod := debugPodName(t, r)
	boxtest.WaitForHost(t, b, "master-0", "crictl ps --label io.kubernetes.pod.name="+debugPod+" | grep -cE ' Running +debugger +0 +[0-9a-f]{13} +"+debugPod+"$'", "1\n")

	// The procedure's check (OpenShift 4.5 documentation, Backup and
	// restore, 5.3 "Restoring to a previous cluster state", step 4c):
	// empty once the
	// manifest is gone, the member stopped with it.
	r = boxtest.HostRun(t, b, "master-0", `mv /etc/kubernetes/manifests/etcd-pod.yaml /tmp/
for i in $(seq 100); do
  crictl ps | grep etcd | grep -v operator || exit 0
  sleep 0.1
done
exit 1`)
	if r.Code != 0 {
		t.Fatalf("etcd containers still listed after the manifest moved: %s", r)
	}
	if b.Node("master-0").Etcd.Running() {
		t.Error("crictl lists no etcd container but the member still runs")
	}
	if r := boxtest.HostRun(t, b, "master-0", "crictl ps -a --label io.kubernetes.container.name=etcd -q; crictl ps --name kube-apiserver -q | wc -l"); r.Stdout != "1\n" {
		t.Errorf("after the move: etcd ids, then the count of kube-apiserver containers: %s", r)
	}
}

// systemctl restart kubelet restarts the kubelet, not the containers: a
// debug pod's process and the etcd member keep running and the node stays
// Ready. systemctl stop kubelet leaves them running too, but the node turns
// NotReady and nothing syncs the static pods until systemctl start.
func TestHostToolSystemctlRestartKubeletKeepsContainersRunning(t *testing.T) {
	t.Parallel()
	b := boxtest.StartBox(t, box.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	podSleep := uniqueSleep()
	r := tools.Run(t, b, "", "kubectl", "debug", "node/master-0", "--profile=sysadmin", "--image="+boxtest.DebugImage, "--", "sh", "-c", "exec "+podSleep)
	if r.Code != 0 {
		t.Fatalf("kubectl debug: %s", r)
	}
	pod := debugPodName(t, r)
	waitForProcess(t, b, podSleep, true)
	pids := processesRunning(b, podSleep)

	if r := boxtest.HostRun(t, b, "master-0", "systemctl restart kubelet.service"); r.Code != 0 {
		t.Fatalf("systemctl restart kubelet: %s", r)
	}
	if got := processesRunning(b, podSleep); strings.Join(got, ",") != strings.Join(pids, ",") {
		t.Errorf("the debug pod's process did not survive the kubelet restart: %v, then %v", pids, got)
	}
	boxtest.AssertNodeReady(t, b, "master-0", corev1.ConditionTrue)
	if r := boxtest.HostRun(t, b, "master-0", "systemctl is-active kubelet"); r.Code != 0 || r.Stdout != "active\n" {
		t.Errorf("systemctl is-active kubelet: %s", r)
	}
	if r := tools.Run(t, b, "", "kubectl", "exec", pod, "--", "true"); r.Code != 0 {
		t.Errorf("exec through the restarted kubelet: %s", r)
	}
	if !b.Node("master-0").Etcd.Running() {
		t.Error("the etcd member stopped with the kubelet restart")
	}
	r = boxtest.HostRun(t, b, "master-0", "journalctl -u kubelet")
	for _, want := range []string{"systemd[1]: Stopping kubelet.service - Kubernetes Kubelet...", "systemd[1]: Started kubelet.service - Kubernetes Kubelet.", `kubenswrapper[`} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("kubelet journal lacks %q:\n%s", want, r.Stdout)
		}
	}

	if r := boxtest.HostRun(t, b, "master-0", "systemctl stop kubelet"); r.Code != 0 {
		t.Fatalf("systemctl stop kubelet: %s", r)
	}
	boxtest.AssertNodeReady(t, b, "master-0", corev1.ConditionUnknown)
	if r := boxtest.HostRun(t, b, "master-0", "systemctl is-active kubelet"); r.Code != 3 || r.Stdout != "inactive\n" {
		t.Errorf("systemctl is-active of a stopped kubelet: %s", r)
	}
	if r := tools.Run(t, b, "", "kubectl", "exec", pod, "--", "true"); r.Code == 0 {
		t.Errorf("exec with the kubelet stopped succeeded: %s", r)
	}
	if got := processesRunning(b, podSleep); len(got) == 0 || !b.Node("master-0").Etcd.Running() {
		t.Errorf("containers stopped with the kubelet: debug pod %v, etcd running %v", got, b.Node("master-0").Etcd.Running())
	}
	if r := boxtest.HostRun(t, b, "master-0", "mv /etc/kubernetes/manifests/kube-scheduler-pod.yaml /tmp/"); r.Code != 0 {
		t.Fatal(r)
	}
	time.Sleep(time.Second)
	if _, err := b.Kube.CoreV1().Pods("openshift-kube-scheduler").Get(ctx, "openshift-kube-scheduler-master-0", metav1.GetOptions{}); err != nil {
		t.Errorf("a stopped kubelet synced the static pods: %v", err)
	}

	if r := boxtest.HostRun(t, b, "master-0", "systemctl start kubelet"); r.Code != 0 {
		t.Fatalf("systemctl start kubelet: %s", r)
	}
	boxtest.AssertNodeReady(t, b, "master-0", corev1.ConditionTrue)
	err := box.WaitFor(ctx, 30*time.Second, "openshift-kube-scheduler-master-0 gone", func(ctx context.Context) (bool, string, error) {
		_, err := b.Kube.CoreV1().Pods("openshift-kube-scheduler").Get(ctx, "openshift-kube-scheduler-master-0", metav1.GetOptions{})
		return err != nil, fmt.Sprint(err), nil
	})
	if err != nil {
		t.Error(err)
	}
	if r := tools.Run(t, b, "", "kubectl", "exec", pod, "--", "true"); r.Code != 0 {
		t.Errorf("exec after systemctl start kubelet: %s", r)
	}
}

// shutdown as the graceful-shutdown procedure uses it (`shutdown -h 1` on
// every node, OpenShift 4.5 documentation, Backup and restore, chapter 3
// "Shutting down the cluster gracefully"), with a box minute of 100 ms: the
// machine
// stops, its node turns NotReady and its member unhealthy. shutdown -c
// cancels; shutdown -r reboots.
func TestHostToolShutdownPowersTheMachineOff(t *testing.T) {
	t.Parallel()
	b := boxtest.StartBox(t, box.Options{MinuteScale: 100 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	r := boxtest.HostRun(t, b, "master-2", "shutdown -h 20 && shutdown -c")
	scheduled := regexp.MustCompile(`^Shutdown scheduled for \w{3} \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+, use 'shutdown -c' to cancel\.\n$`)
	if r.Code != 0 || !scheduled.MatchString(r.Stderr) {
		t.Fatalf("shutdown -h 20, shutdown -c: %s", r)
	}
	time.Sleep(3 * time.Second) // 20 box minutes and then some
	boxtest.AssertNodeReady(t, b, "master-2", corev1.ConditionTrue)
	if state := instanceState(t, b, "master-2"); state != "running" {
		t.Errorf("after a cancelled shutdown, instanceState = %s", state)
	}

	// A reboot: down and up again, without the units of the last boot.
	unitSleep := uniqueSleep()
	if r := boxtest.HostRun(t, b, "master-2", "systemd-run --unit=before-reboot "+unitSleep+" && shutdown -r now"); r.Code != 0 || r.Stderr != "Running as unit: before-reboot.service\n" {
		t.Fatalf("systemd-run, shutdown -r now: %s", r)
	}
	waitForProcess(t, b, unitSleep, false)
	boxtest.WaitForHost(t, b, "master-2", "systemctl is-active kubelet before-reboot", "active\ninactive\n")
	boxtest.AssertNodeReady(t, b, "master-2", corev1.ConditionTrue)
	if state := instanceState(t, b, "master-2"); state != "running" {
		t.Errorf("after a reboot, instanceState = %s", state)
	}
	if err := b.WaitForEtcdMembersAvailable(ctx, "3 members are available"); err != nil {
		t.Fatal(err)
	}

	// As the procedure runs it: from a debug pod on the node.
	r = tools.Run(t, b, "", "kubectl", "debug", "node/master-1", "--profile=sysadmin", "-i", "--image="+boxtest.DebugImage, "--", "chroot", "/host", "shutdown", "-h", "1")
	if r.Code != 0 || !strings.Contains(r.Stdout, "Shutdown scheduled for ") {
		t.Fatalf("shutdown -h 1 from a debug pod: %s", r)
	}
	if err := b.WaitForEtcdMembersAvailable(ctx, "2 of 3 members are available, master-1 is unhealthy"); err != nil {
		t.Fatal(err)
	}
	// The member goes down first; the Node and the Machine follow as the
	// box's power-off completes: wait for them, with a bound.
	err := box.WaitFor(ctx, time.Minute, "master-1 powered off (Ready=Unknown, unreachable, instance stopped)", func(ctx context.Context) (bool, string, error) {
		node, err := b.Kube.CoreV1().Nodes().Get(ctx, "master-1", metav1.GetOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		state := instanceState(t, b, "master-1")
		return boxtest.NodeReady(node) == corev1.ConditionUnknown && hasTaint(node, corev1.TaintNodeUnreachable) && state == "stopped",
			fmt.Sprintf("Ready=%s taints=%v instanceState=%s", boxtest.NodeReady(node), node.Spec.Taints, state), nil
	})
	if err != nil {
		t.Error(err)
	}
}

// cluster-restore.sh refuses a backup directory without a snapshot or
// without the static pod resources, and changes nothing then. With a
// backup taken by cluster-backup.sh it stops the control-plane static pods,
// moves the data dir aside, restores a one-member etcd holding what the
// snapshot held, and starts the static pods again, etcd first.
func TestHostToolClusterRestore(t *testing.T) {
	t.Parallel()
	b := boxtest.StartBox(t, box.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	untouched := func(what string) {
		t.Helper()
		r := boxtest.HostRun(t, b, "master-0", "ls /etc/kubernetes/manifests; test ! -e /home/core/assets/manifests-stopped && test ! -e /var/lib/etcd-backup && test -d /var/lib/etcd/member && echo untouched")
		want := "etcd-pod.yaml\nkube-apiserver-pod.yaml\nkube-controller-manager-pod.yaml\nkube-scheduler-pod.yaml\nuntouched\n"
		if r.Stdout != want || !b.Node("master-0").Etcd.Running() {
			t.Errorf("%s changed the host: %s (member running: %v)", what, r, b.Node("master-0").Etcd.Running())
		}
	}
	r := boxtest.HostRun(t, b, "master-0", "mkdir -p /home/core/no-snapshot && touch /home/core/no-snapshot/static_kuberesources_2024-01-01_000000.tar.gz && cluster-restore.sh /home/core/no-snapshot")
	if r.Code != 1 || r.Stdout != "etcd snapshot /home/core/no-snapshot/snapshot_<timestamp>.db does not exist\n" {
		t.Errorf("restore without a snapshot: %s", r)
	}
	untouched("a restore without a snapshot")
	r = boxtest.HostRun(t, b, "master-0", "mkdir -p /home/core/no-resources && touch /home/core/no-resources/snapshot_2024-01-01_000000.db && cluster-restore.sh /home/core/no-resources")
	if r.Code != 1 || !strings.Contains(r.Stdout, "static pod resources /home/core/no-resources/static_kuberesources_<timestamp>.tar.gz do not exist") {
		t.Errorf("restore without static pod resources: %s", r)
	}
	untouched("a restore without static pod resources")
	if r := boxtest.HostRun(t, b, "master-0", "cluster-restore.sh /home/core/nowhere"); r.Code != 1 || !strings.HasPrefix(r.Stdout, "Path to the directory containing backup files is required") {
		t.Errorf("restore of no directory: %s", r)
	}
	untouched("a restore of no directory")

	// A real restore, as in OpenShift 4.5 documentation, Backup and
	// restore, 5.3 "Restoring to a previous cluster state": a backup, a
	// change after it,
	// the other hosts' etcd and kube-apiserver stopped and their data
	// moved away, then the script on the recovery host.
	configMap := func(name string) {
		t.Helper()
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}}
		if _, err := b.Kube.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	configMap("before-backup")
	if r := boxtest.HostRun(t, b, "master-0", "cluster-backup.sh /home/core/backup"); r.Code != 0 {
		t.Fatalf("cluster-backup.sh: %s", r)
	}
	configMap("after-backup")
	for _, other := range []string{"master-1", "master-2"} {
		r := boxtest.HostRun(t, b, other, `mv /etc/kubernetes/manifests/etcd-pod.yaml /etc/kubernetes/manifests/kube-apiserver-pod.yaml /tmp/
until [ -z "$(crictl ps | grep -E 'etcd|kube-apiserver')" ]; do sleep 0.1; done
mv /var/lib/etcd/ /tmp/`)
		if r.Code != 0 {
			t.Fatalf("stop the static pods on %s: %s", other, r)
		}
	}
	r = boxtest.HostRun(t, b, "master-0", "cluster-restore.sh /home/core/backup")
	if r.Code != 0 {
		t.Fatalf("cluster-restore.sh: %s", r)
	}
	expected := []string{
		`"revision":`, "...stopping kube-apiserver-pod.yaml\n", "...stopping kube-scheduler-pod.yaml\n",
		"Waiting for container kube-apiserver to stop\n", "...stopping etcd-pod.yaml\n", "Waiting for container etcd to stop\n",
		"Waiting for container etcd-readyz to stop\n", "Moving etcd data-dir /var/lib/etcd/member to /var/lib/etcd-backup\n",
		"starting snapshot restore through etcdutl...\n", "restoring old etcd pod to start etcd again\n",
		"starting kube-apiserver-pod.yaml\nstatic-pod-resources/kube-apiserver-pod-", "starting kube-scheduler-pod.yaml\nstatic-pod-resources/kube-scheduler-pod-",
	}
	rest := r.Stdout
	for _, want := range expected {
		i := strings.Index(rest, want)
		if i < 0 {
			t.Fatalf("cluster-restore.sh output lacks %q (in this order):\n%s", want, r)
		}
		rest = rest[i+len(want):]
	}
	r = boxtest.HostRun(t, b, "master-0", "ls /etc/kubernetes/manifests; ls /var/lib/etcd-backup")
	if r.Stdout != "etcd-pod.yaml\nkube-apiserver-pod.yaml\nkube-controller-manager-pod.yaml\nkube-scheduler-pod.yaml\nmember\nsnapshot.db\n" {
		t.Errorf("after the restore, manifests and /var/lib/etcd-backup: %s", r)
	}

	// The kubelet starts the member from the restored data dir: a cluster
	// of one, holding what the snapshot held.
	// As an administrator on an RHCOS host: etcdctl is the scripts' copy out
	// of the etcd image, etcd.env's certificate paths are the etcd pod's
	// (static-pod-certs), its endpoints every member's; this host's member
	// is the one restored.
	etcdctl := `. /etc/kubernetes/static-pod-resources/etcd-certs/configmaps/etcd-scripts/etcd.env && ` +
		`export ETCDCTL_CACERT=$(echo $ETCDCTL_CACERT | sed s,static-pod-certs,static-pod-resources/etcd-certs,) ` +
		`ETCDCTL_CERT=$(echo $ETCDCTL_CERT | sed s,static-pod-certs,static-pod-resources/etcd-certs,) ` +
		`ETCDCTL_KEY=$(echo $ETCDCTL_KEY | sed s,static-pod-certs,static-pod-resources/etcd-certs,) ` +
		`ETCDCTL_ENDPOINTS=https://$NODE_master_0_IP:2379 && PATH=$PATH:/etc/kubernetes/static-pod-resources/bin etcdctl `
	boxtest.WaitForHost(t, b, "master-0", etcdctl+"endpoint health >/dev/null 2>&1 && echo healthy", "healthy\n")
	r = boxtest.HostRun(t, b, "master-0", etcdctl+"member list -w simple | cut -d, -f3")
	if r.Stdout != " master-0\n" {
		t.Errorf("members after the restore: %s", r)
	}
	r = boxtest.HostRun(t, b, "master-0", etcdctl+"get --prefix --keys-only /kubernetes.io/configmaps/default/ | grep backup")
	if r.Stdout != "/kubernetes.io/configmaps/default/before-backup\n" {
		t.Errorf("restored keys: %s", r)
	}
}
