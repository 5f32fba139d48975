package e2e

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/oc-recover/oc-recover/pkg/debugnode"
	"github.com/oc-recover/oc-recover/test/box"
)

// `oc recover cleanup` finds what a killed run left behind, shows it with
// --dry-run without touching it, and removes it.
func TestCleanupRemovesLeftovers(t *testing.T) {
	ctx := context.Background()
	s, err := newEngine(t, shared).Start(ctx, "master-0")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)

	r := tools.Run(t, shared, "", "kubectl-recover", "cleanup", "--dry-run")
	if r.Code != 0 || !strings.Contains(r.Stdout, "namespace/"+s.Namespace) || !strings.Contains(r.Stdout, "Dry run") {
		t.Fatalf("cleanup --dry-run: %s", r)
	}
	if _, err := shared.Kube.CoreV1().Namespaces().Get(ctx, s.Namespace, metav1.GetOptions{}); err != nil {
		t.Fatalf("--dry-run removed the namespace: %v", err)
	}
	r = tools.Run(t, shared, "", "kubectl-recover", "cleanup")
	if r.Code != 0 || !strings.Contains(r.Stdout, "namespace/"+s.Namespace+" removed") {
		t.Fatalf("cleanup: %s", r)
	}
	waitNamespaceGone(t, shared, s.Namespace)
	r = tools.Run(t, shared, "", "kubectl-recover", "cleanup")
	if r.Code != 0 || !strings.Contains(r.Stdout, "Nothing to clean up") {
		t.Errorf("second cleanup: %s", r)
	}
}

// Without cluster-admin, cleanup is refused by the API and says so.
func TestCleanupWithoutPermissionFails(t *testing.T) {
	kubeconfig := filepath.Join(t.TempDir(), "developer")
	if err := shared.WriteKubeconfig(kubeconfig, box.DeveloperToken); err != nil {
		t.Fatal(err)
	}
	r := tools.Run(t, shared, "", "kubectl-recover", "--kubeconfig", kubeconfig, "cleanup")
	if r.Code != 1 || !strings.Contains(r.Stderr, "forbidden") {
		t.Errorf("cleanup as a user without roles: %s", r)
	}
}

// waitNoLeftovers waits until no oc-recover namespace exists any more.
func waitNoLeftovers(t *testing.T, ctx context.Context, client kubernetes.Interface) {
	t.Helper()
	err := box.WaitFor(ctx, 30*time.Second, "no oc-recover namespace left", func(ctx context.Context) (bool, string, error) {
		left, err := debugnode.Leftovers(ctx, client)
		if err != nil {
			return false, err.Error(), nil
		}
		var names []string
		for _, ns := range left {
			names = append(names, ns.Name)
		}
		return len(names) == 0, strings.Join(names, ","), nil
	})
	if err != nil {
		t.Error(err)
	}
}

// On a terminal, cleanup asks first; anything but yes removes nothing.
func TestCleanupAsksOnATerminalAndRemovesNothingWithoutYes(t *testing.T) {
	ctx := context.Background()
	s, err := newEngine(t, shared).Start(ctx, "master-0")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	r := runOnTerminal(t, shared, "n\n", "cleanup")
	if r.Code != 1 || !strings.Contains(r.Stdout, "Remove these 1 namespace(s) and their pods? [y/N]") || !strings.Contains(r.Stdout, "not confirmed; nothing removed") {
		t.Fatalf("cleanup answered no: %s", r)
	}
	ns, err := shared.Kube.CoreV1().Namespaces().Get(ctx, s.Namespace, metav1.GetOptions{})
	if err != nil || ns.DeletionTimestamp != nil {
		t.Fatalf("cleanup answered no, yet namespace %s is gone or going (%v)", s.Namespace, err)
	}
}
