package box_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	mcfgv1 "github.com/openshift/api/machineconfiguration/v1"
	mcfgclient "github.com/openshift/client-go/machineconfiguration/clientset/versioned"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/oc-recover/oc-recover/test/box"
	"github.com/oc-recover/oc-recover/test/internal/boxtest"
)

// The faults a health check must see, on one box of their own with a small
// etcd quota (so that filling etcd takes seconds): the subtests leave the
// box as they found it, the one that fills etcd last.
func TestHealthFaults(t *testing.T) {
	const quota = 48 << 20
	b := boxtest.StartBox(t, box.Options{Workers: 1, EtcdQuotaBytes: quota})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// Every container of every etcd pod carries the quota, as the
	// operator's computed environment, and so does each host's etcd.env.
	t.Run("QuotaInEtcdPodsAndEtcdEnv", func(t *testing.T) {
		want := strconv.Itoa(quota)
		for _, n := range []string{"master-0", "master-1", "master-2"} {
			pod, err := b.EtcdPod(ctx, n)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range pod.Spec.Containers {
				if got := envValue(c, "ETCD_QUOTA_BACKEND_BYTES"); got != want {
					t.Errorf("%s container %s: ETCD_QUOTA_BACKEND_BYTES=%q, want %q", pod.Name, c.Name, got, want)
				}
			}
			env, err := os.ReadFile(filepath.Join(b.Node(n).Sandbox.Root, "etc/kubernetes/static-pod-resources/etcd-certs/configmaps/etcd-scripts/etcd.env"))
			if err != nil {
				t.Fatal(err)
			}
			if line := `export ETCD_QUOTA_BACKEND_BYTES="` + want + `"`; !strings.Contains(string(env), line+"\n") {
				t.Errorf("%s etcd.env lacks %s:\n%s", n, line, env)
			}
		}
	})

	// The pools an installed cluster shows, healthy; a degraded node's
	// daemon turns its pool Degraded until the fault is cleared, and
	// nothing else in the box clears it.
	t.Run("MachineConfigPools", func(t *testing.T) {
		mc, err := mcfgclient.NewForConfig(b.Admin)
		if err != nil {
			t.Fatal(err)
		}
		pool := func(name string) *mcfgv1.MachineConfigPool {
			t.Helper()
			p, err := mc.MachineconfigurationV1().MachineConfigPools().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			return p
		}
		healthy := "Updated=True Updating=False NodeDegraded=False RenderDegraded=False Degraded=False"
		for name, machines := range map[string]int32{"master": 3, "worker": 1} {
			p := pool(name)
			st := p.Status
			if st.MachineCount != machines || st.ReadyMachineCount != machines || st.UpdatedMachineCount != machines ||
				st.UnavailableMachineCount != 0 || st.DegradedMachineCount != 0 || st.ObservedGeneration != p.Generation {
				t.Errorf("pool %s: %+v, want %d machines all ready and updated at generation %d", name, st, machines, p.Generation)
			}
			if got := poolConditions(p); got != healthy {
				t.Errorf("pool %s conditions: %s, want %s", name, got, healthy)
			}
			if st.Configuration.Name == "" || st.Configuration.Name != p.Spec.Configuration.Name {
				t.Errorf("pool %s at %q, wants %q", name, st.Configuration.Name, p.Spec.Configuration.Name)
			}
			if _, err := mc.MachineconfigurationV1().MachineConfigs().Get(ctx, st.Configuration.Name, metav1.GetOptions{}); err != nil {
				t.Errorf("pool %s's rendered config: %v", name, err)
			}
		}

		const reason = `unexpected on-disk state validating against rendered-master: content mismatch for file "/etc/kubernetes/kubelet.conf"`
		if err := b.DegradePool(ctx, "master", reason); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1500 * time.Millisecond) // a few rounds of the simulators
		p := pool("master")
		st := p.Status
		if st.DegradedMachineCount != 1 || st.UpdatedMachineCount != 2 || st.ReadyMachineCount != 2 || st.UnavailableMachineCount != 1 {
			t.Errorf("degraded master pool counts: %+v", st)
		}
		if got, want := poolConditions(p), "Updated=False Updating=True NodeDegraded=True RenderDegraded=False Degraded=True"; got != want {
			t.Errorf("degraded master pool conditions: %s, want %s", got, want)
		}
		wantMsg := `Node master-0 is reporting: "` + strings.ReplaceAll(reason, `"`, `\"`) + `"`
		for _, c := range st.Conditions {
			if (c.Type == mcfgv1.MachineConfigPoolNodeDegraded || c.Type == mcfgv1.MachineConfigPoolDegraded) && c.Message != wantMsg {
				t.Errorf("%s message %q, want %q", c.Type, c.Message, wantMsg)
			}
			if c.Type == mcfgv1.MachineConfigPoolNodeDegraded && c.Reason != "1 nodes are reporting degraded status on sync" {
				t.Errorf("NodeDegraded reason %q", c.Reason)
			}
		}
		node, err := b.Kube.CoreV1().Nodes().Get(ctx, "master-0", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if s := node.Annotations["machineconfiguration.openshift.io/state"]; s != "Degraded" {
			t.Errorf("master-0's daemon state %q, want Degraded", s)
		}
		if got := poolConditions(pool("worker")); got != healthy {
			t.Errorf("worker pool with the master pool degraded: %s", got)
		}

		if err := b.DegradePool(ctx, "master", ""); err != nil {
			t.Fatal(err)
		}
		if p := pool("master"); poolConditions(p) != healthy || p.Status.DegradedMachineCount != 0 || p.Status.ReadyMachineCount != 3 {
			t.Errorf("master pool after the fault is cleared: %s %+v", poolConditions(p), p.Status)
		}
		if err := b.DegradePool(ctx, "infra", "x"); err == nil {
			t.Error("DegradePool of a pool the box does not have succeeded")
		}
	})

	// The control-plane static pods answer the selectors their operators
	// (and tools) use, under their OpenShift names.
	t.Run("ControlPlanePodLabels", func(t *testing.T) {
		for _, tc := range []struct{ namespace, selector, prefix string }{
			{"openshift-kube-apiserver", "app=openshift-kube-apiserver,apiserver=true", "kube-apiserver-"},
			{"openshift-kube-controller-manager", "app=kube-controller-manager,kube-controller-manager=true", "kube-controller-manager-"},
			{"openshift-kube-scheduler", "app=openshift-kube-scheduler,scheduler=true", "openshift-kube-scheduler-"},
			{"openshift-etcd", "app=etcd,etcd=true,k8s-app=etcd", "etcd-"},
		} {
			pods, err := b.Kube.CoreV1().Pods(tc.namespace).List(ctx, metav1.ListOptions{LabelSelector: tc.selector})
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, p := range pods.Items {
				names = append(names, p.Name)
				if p.Labels["revision"] == "" {
					t.Errorf("%s has no revision label", p.Name)
				}
			}
			sort.Strings(names)
			if want := tc.prefix + "master-0 " + tc.prefix + "master-1 " + tc.prefix + "master-2"; strings.Join(names, " ") != want {
				t.Errorf("pods %s in %s: %v, want %s", tc.selector, tc.namespace, names, want)
			}
		}
	})

	// A failurePolicy Fail webhook whose service has no endpoint refuses
	// the writes it matches, at once, and only those.
	t.Run("UnreachableWebhook", func(t *testing.T) {
		const name = "broken-webhook"
		remove, err := b.AddUnreachableWebhook(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		hook, err := b.Kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if w := hook.Webhooks[0]; *w.FailurePolicy != admissionregistrationv1.Fail || w.ClientConfig.Service == nil ||
			w.ClientConfig.Service.Namespace != name || w.ClientConfig.Service.Name != name {
			t.Errorf("webhook %+v", w)
		}
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "blocked"}}
		start := time.Now()
		_, err = b.Kube.CoreV1().ConfigMaps(name).Create(ctx, cm, metav1.CreateOptions{})
		t.Logf("a write the webhook matches, after %v: %v", time.Since(start).Round(time.Millisecond), err)
		if err == nil || !strings.Contains(err.Error(), "failed calling webhook") || !strings.Contains(err.Error(), `no endpoints available for service "`+name+`"`) {
			t.Errorf("a config map in %s: %v, want the webhook's failure", name, err)
		}
		start = time.Now()
		if _, err := b.Kube.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "not-blocked"}}, metav1.CreateOptions{}); err != nil {
			t.Errorf("a config map elsewhere: %v", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("a write the webhook does not match took %v", d)
		}

		// The EndpointSlice controller gives the webhook's service its
		// slice, with no endpoint in it.
		err = box.WaitFor(ctx, 20*time.Second, "the webhook service's EndpointSlice", func(ctx context.Context) (bool, string, error) {
			slices, err := b.Kube.DiscoveryV1().EndpointSlices(name).List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=" + name})
			if err != nil {
				return false, err.Error(), nil
			}
			for _, s := range slices.Items {
				if len(s.Endpoints) > 0 {
					return false, "", fmt.Errorf("the webhook's service has endpoints: %+v", s.Endpoints)
				}
			}
			return len(slices.Items) > 0, fmt.Sprintf("%d slices", len(slices.Items)), nil
		})
		if err != nil {
			t.Error(err)
		}

		if err := remove(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{}); err == nil {
			t.Error("the webhook configuration is still there after remove")
		}
		if slices, err := b.Kube.DiscoveryV1().EndpointSlices(name).List(ctx, metav1.ListOptions{}); err != nil || len(slices.Items) > 0 {
			t.Errorf("EndpointSlices left after remove: %v %v", slices, err)
		}
		err = box.WaitFor(ctx, 30*time.Second, "namespace "+name+" gone", func(ctx context.Context) (bool, string, error) {
			_, err := b.Kube.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
			return err != nil, fmt.Sprint(err), nil
		})
		if err != nil {
			t.Error(err)
		}
	})

	// Filling etcd raises a real NOSPACE alarm that stops the API's writes
	// too; deleting, compacting, defragmenting and disarming bring both back.
	t.Run("NoSpaceAlarmAndRecovery", func(t *testing.T) {
		cli, err := b.EtcdClient()
		if err != nil {
			t.Fatal(err)
		}
		defer cli.Close()
		start := time.Now()
		written, err := b.FillEtcd(ctx, "", 4*quota)
		if !errors.Is(err, box.ErrEtcdNoSpace) || !errors.Is(err, rpctypes.ErrNoSpace) {
			t.Fatalf("FillEtcd wrote %d bytes, err %v; want the NOSPACE error", written, err)
		}
		t.Logf("etcd full after %d MiB in %v: %v", written>>20, time.Since(start).Round(time.Millisecond), err)
		if written <= 0 || written >= quota {
			t.Errorf("FillEtcd wrote %d bytes before NOSPACE with a %d-byte quota", written, quota)
		}
		if got := alarms(ctx, t, cli); !strings.Contains(got, "NOSPACE") {
			t.Errorf("alarm list: %q, want NOSPACE", got)
		}
		cm := func(name string) *corev1.ConfigMap {
			return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"k": "v"}}
		}
		if _, err := b.Kube.CoreV1().ConfigMaps("default").Create(ctx, cm("while-full"), metav1.CreateOptions{}); err == nil || !strings.Contains(err.Error(), "database space exceeded") {
			t.Errorf("an API write while etcd is full: %v, want database space exceeded", err)
		}

		if err := b.DeleteEtcdPrefix(ctx, box.DefaultFillPrefix); err != nil {
			t.Fatal(err)
		}
		if err := b.CompactAndDefragEtcd(ctx); err != nil {
			t.Fatal(err)
		}
		if err := b.DisarmEtcdAlarms(ctx); err != nil {
			t.Fatal(err)
		}
		if got := alarms(ctx, t, cli); got != "" {
			t.Errorf("alarms after disarm: %q", got)
		}
		for _, n := range []string{"master-0", "master-1", "master-2"} {
			url := b.Node(n).Etcd.ClientURL()
			st, err := cli.Status(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			if st.DbSize >= quota/2 {
				t.Errorf("%s database is %d bytes after defragmentation", n, st.DbSize)
			}
		}
		if _, err := cli.Put(ctx, box.DefaultFillPrefix+"after", "v"); err != nil {
			t.Errorf("etcd write after recovery: %v", err)
		}
		if err := b.DeleteEtcdPrefix(ctx, box.DefaultFillPrefix); err != nil {
			t.Fatal(err)
		}
		// The apiserver's client may take a moment to find a writable member.
		err = box.WaitFor(ctx, 20*time.Second, "an API write after recovery", func(ctx context.Context) (bool, string, error) {
			_, err := b.Kube.CoreV1().ConfigMaps("default").Create(ctx, cm("after-recovery"), metav1.CreateOptions{})
			if err != nil {
				return false, err.Error(), nil
			}
			return true, "", nil
		})
		if err != nil {
			t.Error(err)
		}
	})
}

func envValue(c corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

// alarms lists the cluster's alarms as "member:ALARM" words.
func alarms(ctx context.Context, t *testing.T, cli *clientv3.Client) string {
	t.Helper()
	resp, err := cli.AlarmList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range resp.Alarms {
		out = append(out, strconv.FormatUint(a.MemberID, 16)+":"+a.Alarm.String())
	}
	return strings.Join(out, " ")
}

// poolConditions words a pool's conditions as Type=Status, in a fixed order.
func poolConditions(p *mcfgv1.MachineConfigPool) string {
	var out []string
	for _, t := range []mcfgv1.MachineConfigPoolConditionType{mcfgv1.MachineConfigPoolUpdated, mcfgv1.MachineConfigPoolUpdating,
		mcfgv1.MachineConfigPoolNodeDegraded, mcfgv1.MachineConfigPoolRenderDegraded, mcfgv1.MachineConfigPoolDegraded} {
		status := "missing"
		for _, c := range p.Status.Conditions {
			if c.Type == t {
				status = string(c.Status)
			}
		}
		out = append(out, string(t)+"="+status)
	}
	return strings.Join(out, " ")
}
