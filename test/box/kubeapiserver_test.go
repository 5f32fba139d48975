package box_test

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"

	"github.com/oc-recover/oc-recover/test/box"
	"github.com/oc-recover/oc-recover/test/internal/boxtest"
)

// The API is the hosts' kube-apiserver static pods behind one endpoint:
// gone once no host runs one (what a restore does first), back on one
// host's pod with what etcd then holds, on the same endpoint, trusted by
// the same kubeconfig.
func TestAPIFollowsTheHostsKubeAPIServerPods(t *testing.T) {
	t.Parallel()
	b := boxtest.StartBox(t, box.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cms := b.Kube.CoreV1().ConfigMaps("default")
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "written-before"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	const stopAPI = "mkdir -p /etc/kubernetes/manifests-stopped && mv /etc/kubernetes/manifests/kube-apiserver-pod.yaml /etc/kubernetes/manifests-stopped/"
	const localOC = "KUBECONFIG=/etc/kubernetes/static-pod-resources/kube-apiserver-certs/secrets/node-kubeconfigs/localhost.kubeconfig oc get --raw /readyz --request-timeout=5s"

	// One host's pod stopped: the API stays, that host's own apiserver is gone.
	if r := boxtest.HostRun(t, b, "master-0", stopAPI); r.Code != 0 {
		t.Fatalf("stop master-0's kube-apiserver: %s", r)
	}
	boxtest.WaitForHost(t, b, "master-0", localOC+" >/dev/null 2>&1; echo $?", "1\n")
	if r := boxtest.HostRun(t, b, "master-1", localOC); r.Code != 0 || r.Stdout != "ok" {
		t.Errorf("master-1's own kube-apiserver: %s", r)
	}
	if _, err := cms.Get(ctx, "written-before", metav1.GetOptions{}); err != nil {
		t.Fatalf("the API with two of three kube-apiservers: %v", err)
	}

	// Every host's pod stopped: the API is gone.
	for _, n := range []string{"master-1", "master-2"} {
		if r := boxtest.HostRun(t, b, n, stopAPI); r.Code != 0 {
			t.Fatalf("stop %s's kube-apiserver: %s", n, r)
		}
	}
	err := box.WaitFor(ctx, 30*time.Second, "the API gone", func(ctx context.Context) (bool, string, error) {
		_, err := b.Kube.Discovery().RESTClient().Get().AbsPath("/readyz").Timeout(2 * time.Second).DoRaw(ctx)
		return err != nil && !apierrors.IsInternalError(err), errString(err), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	r := tools.Run(t, b, "", "kubectl", "--kubeconfig", b.Kubeconfig, "get", "--raw", "/readyz", "--request-timeout=5s")
	if r.Code == 0 || !strings.Contains(r.Stderr, "was refused") {
		t.Errorf("kubectl with no kube-apiserver running: %s", r)
	}

	// What etcd holds changes meanwhile, as a restore changes it.
	etcd, err := b.EtcdClient()
	if err != nil {
		t.Fatal(err)
	}
	defer etcd.Close()
	if resp, err := etcd.Delete(ctx, "/kubernetes.io/configmaps/default/written-before"); err != nil || resp.Deleted != 1 {
		t.Fatalf("delete the configmap in etcd: %v %v", resp, err)
	}

	// One host's pod back: the API serves etcd's data, on the same endpoint.
	if r := boxtest.HostRun(t, b, "master-2", "mv /etc/kubernetes/manifests-stopped/kube-apiserver-pod.yaml /etc/kubernetes/manifests/"); r.Code != 0 {
		t.Fatalf("start master-2's kube-apiserver: %s", r)
	}
	err = box.WaitFor(ctx, 90*time.Second, "the API back", func(ctx context.Context) (bool, string, error) {
		_, err := cms.Get(ctx, "written-before", metav1.GetOptions{})
		return apierrors.IsNotFound(err), errString(err), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := b.APIServerStarts(); n != 2 {
		t.Errorf("the kube-apiserver started %d times, want 2", n)
	}
	// An outage shorter than the leader-election renew deadline (107 s):
	// the simulated controllers kept their leases and their caches.
	if n := b.CacheRestarts(); n != 0 {
		t.Errorf("the simulators restarted their caches %d times after a short outage", n)
	}
	if r := tools.Run(t, b, "", "kubectl", "--kubeconfig", b.Kubeconfig, "get", "--raw", "/readyz", "--request-timeout=5s"); r.Code != 0 || r.Stdout != "ok" {
		t.Errorf("kubectl with the installer's kubeconfig after the API came back: %s", r)
	}
	boxtest.WaitForHost(t, b, "master-2", localOC, "ok")
	if r := boxtest.HostRun(t, b, "master-0", localOC); r.Code == 0 {
		t.Errorf("master-0's own kube-apiserver answers with its pod stopped: %s", r)
	}
	// The kubelets report to the new server: master-2's mirror pod is back.
	err = box.WaitFor(ctx, 30*time.Second, "kube-apiserver-master-2 running", func(ctx context.Context) (bool, string, error) {
		p, err := b.Kube.CoreV1().Pods("openshift-kube-apiserver").Get(ctx, "kube-apiserver-master-2", metav1.GetOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		return p.Status.Phase == corev1.PodRunning, string(p.Status.Phase), nil
	})
	if err != nil {
		t.Error(err)
	}

	// A fatal error logged in the process (a kube-apiserver's post-start
	// hook that gave up, in this box or another) ends the goroutine that
	// logged it, not the test process; this box's server, whose hooks are
	// all done, keeps running.
	logged := make(chan struct{})
	go func() {
		defer close(logged)
		klog.Fatalf("a fatal error logged beside the box")
	}()
	<-logged
	time.Sleep(time.Second) // a few of the server's syncs
	if n := b.APIServerStarts(); n != 2 {
		t.Errorf("after a fatal error elsewhere the kube-apiserver started %d times, want 2", n)
	}
	if _, err := cms.Get(ctx, "written-before", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the API after a fatal error elsewhere: %v", err)
	}
}

func errString(err error) string {
	if err == nil {
		return "no error"
	}
	return err.Error()
}
