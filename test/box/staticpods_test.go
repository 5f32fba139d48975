package box_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/oc-recover/oc-recover/test/box"
)

// A static pod's mirror pod follows its manifest as the kubelet's does: it
// appears with the manifest, is deleted and created again when the
// manifest changes (a new revision, or a mirror pod a restored etcd
// remembers from before), and goes with the manifest.
func TestMirrorPodFollowsItsManifest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	manifest := filepath.Join(shared.Node("worker-0").Sandbox.Root, "etc/kubernetes/manifests/mirror-probe-pod.yaml")
	write := func(version string) {
		t.Helper()
		pod := "apiVersion: v1\nkind: Pod\nmetadata:\n  name: mirror-probe\n  namespace: default\n  labels:\n    version: \"" + version + "\"\nspec:\n  containers:\n  - name: probe\n    image: registry.example/probe:1\n"
		if err := os.WriteFile(manifest, []byte(pod), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { os.Remove(manifest) })
	pods := shared.Kube.CoreV1().Pods("default")
	mirror := func(version string, not types.UID) types.UID {
		t.Helper()
		var uid types.UID
		err := box.WaitFor(ctx, 30*time.Second, "mirror pod of version "+version, func(ctx context.Context) (bool, string, error) {
			p, err := pods.Get(ctx, "mirror-probe-worker-0", metav1.GetOptions{})
			if err != nil {
				return false, err.Error(), nil
			}
			uid = p.UID
			return p.Labels["version"] == version && p.UID != not && p.Annotations["kubernetes.io/config.mirror"] != "", p.Labels["version"] + " " + string(p.UID), nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return uid
	}
	write("1")
	first := mirror("1", "")
	write("2")
	mirror("2", first)
	if err := os.Remove(manifest); err != nil {
		t.Fatal(err)
	}
	err := box.WaitFor(ctx, 30*time.Second, "mirror pod gone with its manifest", func(ctx context.Context) (bool, string, error) {
		_, err := pods.Get(ctx, "mirror-probe-worker-0", metav1.GetOptions{})
		return apierrors.IsNotFound(err), "", nil
	})
	if err != nil {
		t.Error(err)
	}
}
