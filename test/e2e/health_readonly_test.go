package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"

	"github.com/oc-recover/oc-recover/pkg/health"
	"github.com/oc-recover/oc-recover/test/box"
)

// objectVersions is every object of every listable resource, by
// resource/namespace/name, with its resourceVersion and its writers (the
// field managers, and when they last wrote).
type objectVersions map[string]objectVersion

type objectVersion struct {
	rv       string
	deleting bool
	writers  map[string]time.Time
}

func listEverything(t *testing.T, b *box.Box) objectVersions {
	t.Helper()
	disc, err := discovery.NewDiscoveryClientForConfig(b.Admin)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(b.Admin)
	if err != nil {
		t.Fatal(err)
	}
	lists, err := discovery.ServerPreferredResources(disc)
	if err != nil && len(lists) == 0 {
		t.Fatal(err)
	}
	out := objectVersions{}
	for _, l := range lists {
		gv, _ := schema.ParseGroupVersion(l.GroupVersion)
		for _, r := range l.APIResources {
			if strings.Contains(r.Name, "/") || !hasVerb(r.Verbs, "list") {
				continue
			}
			gvr := gv.WithResource(r.Name)
			items, err := dyn.Resource(gvr).List(context.Background(), metav1.ListOptions{})
			if err != nil {
				continue // served by nothing in the box (an aggregated API)
			}
			for _, it := range items.Items {
				v := objectVersion{rv: it.GetResourceVersion(), deleting: it.GetDeletionTimestamp() != nil, writers: map[string]time.Time{}}
				for _, mf := range it.GetManagedFields() {
					if mf.Time != nil && mf.Time.After(v.writers[mf.Manager]) {
						v.writers[mf.Manager] = mf.Time.Time
					}
				}
				out[fmt.Sprintf("%s %s/%s", gvr.GroupResource(), it.GetNamespace(), it.GetName())] = v
			}
		}
	}
	return out
}

func hasVerb(verbs []string, want string) bool {
	for _, v := range verbs {
		if v == want {
			return true
		}
	}
	return false
}

// `health` changes nothing in the cluster: no object is created, deleted
// or written by it. The box's own simulators keep writing meanwhile (node
// heartbeats, leases, operator status), so a created or changed object
// counts only if the plugin is among its writers since the run began.
func TestHealthChangesNothing(t *testing.T) {
	before := listEverything(t, shared)
	start := time.Now().Add(-time.Second).Truncate(time.Second)
	rep, r := runHealth(t, shared, "--backup-dir", t.TempDir())
	if len(rep.Checks) < 30 || r.Code == 2 {
		t.Fatalf("health did not run its checks: %s", r)
	}
	after := listEverything(t, shared)
	var changed []string
	for key, a := range after {
		// A write records its writer: the plugin's, if it created or
		// changed the object.
		for manager, at := range a.writers {
			if strings.Contains(manager, "recover") && !at.Before(start) {
				changed = append(changed, fmt.Sprintf("%s written by %s at %s", key, manager, at.Format(time.RFC3339)))
			}
		}
	}
	// A deletion leaves nothing to ask: any object gone counts, but those
	// already being deleted before (a namespace an earlier test removed)
	// and the events the box's simulators come and go with.
	for key, b := range before {
		if _, ok := after[key]; !ok && !b.deleting && !churns(key) {
			changed = append(changed, key+" deleted")
		}
	}
	sort.Strings(changed)
	if len(changed) > 0 {
		t.Errorf("health changed the cluster:\n%s", strings.Join(changed, "\n"))
	}
	if rep.Verdict == health.Fail {
		for _, c := range rep.Checks {
			if c.Severity == health.Fail {
				t.Logf("%s: %s %v", c.ID, c.Summary, c.Evidence)
			}
		}
	}
}

// churns says whether the box's own simulators create and delete objects
// of this kind while it runs: events.
func churns(key string) bool {
	return strings.HasPrefix(key, "events ") || strings.HasPrefix(key, "events.events.k8s.io ")
}

// An API that does not answer gets one request: health says so at once
// (well within the probe's bound), reads the API server's certificate
// without the API, and fails.
func TestHealthWhenTheAPIDoesNotAnswer(t *testing.T) {
	dead := filepath.Join(t.TempDir(), "kubeconfig")
	data, err := os.ReadFile(shared.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	// A port nothing listens on, on the same loopback address.
	if err := os.WriteFile(dead, []byte(strings.ReplaceAll(string(data), shared.APIServerURL, "https://127.0.0.1:1")), 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	rep, r := runHealth(t, shared, "--kubeconfig", dead)
	if took := time.Since(start); took > 40*time.Second {
		t.Errorf("health took %s against an API that does not answer", took)
	}
	if r.Code != 1 || rep.Verdict != health.Fail {
		t.Fatalf("exit %d, verdict %s: %s", r.Code, rep.Verdict, r)
	}
	if c := find(rep, "api.readyz"); !strings.Contains(c.Summary, "https://127.0.0.1:1 does not answer") || !strings.Contains(c.Fix, "kubectl recover certs recover") {
		t.Errorf("api.readyz: %+v", c)
	}
	if c := find(rep, "certs.apiserver"); c.Severity != health.Fail || !strings.Contains(c.Summary, "could not run: connect to 127.0.0.1:1") {
		t.Errorf("certs.apiserver: %+v", c)
	}
	if c := find(rep, "etcd.quota"); !strings.Contains(c.Summary, "not run: the API does not answer") {
		t.Errorf("etcd.quota: %+v", c)
	}
}
