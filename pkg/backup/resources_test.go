package backup

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func fourPods(rev string) []string {
	var names []string
	for _, pod := range StaticPodOperators {
		d := "static-pod-resources/" + pod + "-pod-" + rev + "/"
		names = append(names, d+pod+"-pod.yaml", d+"configmaps/config/config.yaml")
	}
	return names
}

// A restore needs one revision of each of the four static pods, each with
// its manifest, and with encryption on the encryption configuration.
func TestCheckResourceLayout(t *testing.T) {
	ok := fourPods("7")
	if _, _, err := checkResourceLayout(ok, false); err != nil {
		t.Fatalf("the four pods: %v", err)
	}
	if _, _, err := checkResourceLayout(append([]string{"./"}, ok...), false); err != nil {
		t.Fatalf("with ./: %v", err)
	}
	onlyEtcd := []string{"static-pod-resources/etcd-pod-3/etcd-pod.yaml", "static-pod-resources/etcd-pod-3/secrets/x"}
	_, _, err := checkResourceLayout(onlyEtcd, false)
	for _, want := range []string{"kube-apiserver-pod-<N>/kube-apiserver-pod.yaml", "kube-controller-manager-pod-<N>", "kube-scheduler-pod-<N>"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("only etcd: %v, want it to name %s", err, want)
		}
	}
	var noManifest []string
	for _, n := range ok {
		if !strings.HasSuffix(n, "kube-scheduler-pod.yaml") {
			noManifest = append(noManifest, n)
		}
	}
	if _, _, err := checkResourceLayout(noManifest, false); err == nil || !strings.Contains(err.Error(), "kube-scheduler-pod-<N>/kube-scheduler-pod.yaml") {
		t.Errorf("a revision dir without its manifest: %v", err)
	}
	if _, _, err := checkResourceLayout(append(fourPods("7"), "static-pod-resources/etcd-pod-6/etcd-pod.yaml"), false); err == nil || !strings.Contains(err.Error(), "2 revisions of the etcd pod (6, 7)") {
		t.Errorf("two revisions: %v", err)
	}
	if _, _, err := checkResourceLayout(ok, true); err == nil || !strings.Contains(err.Error(), "kube-apiserver-pod-7/secrets/encryption-config/encryption-config") {
		t.Errorf("encryption on without its configuration: %v", err)
	}
	if _, _, err := checkResourceLayout(append(ok, "static-pod-resources/kube-apiserver-pod-7/secrets/encryption-config/encryption-config"), true); err != nil {
		t.Errorf("encryption on with its configuration: %v", err)
	}
}

// The host script's --force names: recognised, kept together, and marked.
func TestDirtyNames(t *testing.T) {
	dirty := []File{{Name: "snapshot_2026-12-01_101010__POSSIBLY_DIRTY__.db", Kind: KindSnapshot}, {Name: "static_kuberesources_2026-12-01_101010__POSSIBLY_DIRTY__.tar.gz", Kind: KindStaticResources}}
	if ts := timestampOf(dirty); ts != "2026-12-01_101010"+DirtyMark {
		t.Errorf("timestampOf(dirty) = %q", ts)
	}
	mixed := []File{dirty[0], {Name: "static_kuberesources_2026-12-01_101010.tar.gz"}}
	if ts := timestampOf(mixed); ts != "" {
		t.Errorf("a dirty snapshot with a clean archive: timestampOf = %q, want none", ts)
	}
	dir := t.TempDir()
	for _, f := range dirty {
		if err := os.WriteFile(filepath.Join(dir, f.Name), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	files, err := findFiles(dir)
	if err != nil || len(files) != 2 {
		t.Fatalf("findFiles of a dirty backup: %v %v", files, err)
	}
	entries, err := List(filepath.Dir(dir))
	if err != nil {
		t.Fatal(err)
	}
	var found *Entry
	for i := range entries {
		if entries[i].Dir == dir {
			found = &entries[i]
		}
	}
	if found == nil || !found.Dirty() || found.Created().Format("2006-01-02 15:04:05") != "2026-12-01 10:10:10" || found.Files[0].Size != 1 {
		t.Fatalf("List of a dirty backup without backup.json: %+v", found)
	}
	v := &Verification{Dir: dir, Dirty: true}
	if err := v.RefuseDirty(false, "oc recover"); err == nil || !strings.Contains(err.Error(), "--force") || !strings.Contains(err.Error(), "`oc recover backup list") {
		t.Errorf("a restore of a dirty backup without --force: %v", err)
	}
	if err := v.RefuseDirty(true, "oc recover"); err != nil {
		t.Errorf("with --force: %v", err)
	}
}

// The script's own advice names its own flag; the plugin's says what to do
// with the plugin.
func TestScriptFailureSpeaksOfThePlugin(t *testing.T) {
	progressing := []string{"Currently the kube-apiserver operator is progressing. A reliable backup requires that a rollout is not in progress.  Aborting!"}
	if err := scriptFailure("m0", 1, progressing, strings.Join(progressing, "\n")); !strings.Contains(err.Error(), "A rollout began after the pre-flight check") {
		t.Errorf("progressing: %v", err)
	}
	noAPI := []string{"Could not find the status of the kube-apiserver. Check if the API server is running. Pass the --force flag to skip checks."}
	if err := scriptFailure("m0", 1, noAPI, noAPI[0]); !strings.Contains(err.Error(), "m0's own kube-apiserver") || !strings.Contains(err.Error(), "--node") {
		t.Errorf("no local API: %v", err)
	}
	if err := scriptFailure("m0", 75, nil, "oc-recover: another oc-recover backup has been running"); !strings.Contains(err.Error(), "Another oc-recover backup still runs") {
		t.Errorf("lock: %v", err)
	}
}

func TestLockTickNeverLooksSilent(t *testing.T) {
	for _, tc := range []struct {
		silence string
		want    int
	}{{"1s", 1}, {"3s", 1}, {"12s", 4}, {"10m", 10}} {
		d, _ := time.ParseDuration(tc.silence)
		if got := lockTick(d); got != tc.want || float64(got) >= d.Seconds() && d.Seconds() > 1 {
			t.Errorf("lockTick(%s) = %d, want %d", tc.silence, got, tc.want)
		}
	}
}
