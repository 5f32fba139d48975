package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/oc-recover/oc-recover/pkg/restore"
	"github.com/oc-recover/oc-recover/test/box"
	"github.com/oc-recover/oc-recover/test/internal/boxtest"
)

// With `restore prepare` done while the cluster was healthy, a cluster
// that lost two of its three control-plane hosts for good is restored by
// one command on the surviving host's console: the API comes back on the
// restored data, on the endpoint the kubeconfig names, with one member.
func TestRestorePreparedFromTheConsoleAfterQuorumLoss(t *testing.T) {
	t.Parallel()
	b := boxtest.StartBox(t, box.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cms := b.Kube.CoreV1().ConfigMaps("default")
	configMap := func(name string) {
		t.Helper()
		if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	configMap("before-backup")
	dir, m := backupOf(t, b)
	var files []string
	for _, f := range m.Files {
		files = append(files, "backup/"+f.Name)
	}
	if len(files) != 2 {
		t.Fatalf("backup files: %v", files)
	}

	r := runRestore(t, b, nil, "prepare", dir)
	if r.Code != 0 {
		t.Fatalf("restore prepare: %s", r)
	}
	for _, want := range []string{"in " + restore.PreparedDir + " on master-0, master-1, master-2",
		"master-1: bash " + restore.PreparedDir + "/run.sh peer master-0", "master-0: bash " + restore.PreparedDir + "/run.sh recovery"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("restore prepare says nothing of %q:\n%s", want, r)
		}
	}
	for _, n := range []string{"master-0", "master-1", "master-2"} {
		root := filepath.Join(b.Node(n).Sandbox.Root, restore.PreparedDir)
		for _, f := range append(files, "run.sh", "plan.env") {
			if _, err := os.Stat(filepath.Join(root, f)); err != nil {
				t.Errorf("%s: %v", n, err)
			}
		}
		env, _ := os.ReadFile(filepath.Join(root, "plan.env"))
		if !strings.Contains(string(env), "THIS_NODE='"+n+"'\n") || !strings.Contains(string(env), "OLD_CLUSTER_ID=") {
			t.Errorf("%s's plan.env:\n%s", n, env)
		}
	}
	waitNoLeftovers(t, ctx, b.Kube)
	configMap("after-backup")

	// Two hosts lost for good: etcd has no quorum, the API no longer serves.
	if err := b.StopMachine(ctx, "master-1"); err != nil {
		t.Fatal(err)
	}
	_ = b.StopMachine(ctx, "master-2")
	run := "bash " + restore.PreparedDir + "/run.sh recovery"
	if res := boxtest.HostRun(t, b, "master-0", run); res.Code != 0 || !strings.Contains(res.Stdout, "done: etcd serves cluster") {
		t.Fatalf("on master-0's console, %q: %s", run, res)
	}
	err := box.WaitFor(ctx, 2*time.Minute, "the API serving the restored data", func(ctx context.Context) (bool, string, error) {
		if _, err := cms.Get(ctx, "before-backup", metav1.GetOptions{}); err != nil {
			return false, "before-backup: " + err.Error(), nil
		}
		_, err := cms.Get(ctx, "after-backup", metav1.GetOptions{})
		return apierrors.IsNotFound(err), "after-backup: " + errString(err), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if ids := boxtest.MemberIDs(t, b); len(ids) != 1 || ids["master-0"] == 0 {
		t.Errorf("etcd members after the restore: %v", ids)
	}
	// The pre-restore data is kept in the prepared directory, nothing in /tmp;
	// a second run changes nothing.
	if res := boxtest.HostRun(t, b, "master-0", "test -d "+restore.PreparedDir+"/pre-restore-member/snap && ls -A /tmp | wc -l"); res.Code != 0 || res.Stdout != "0\n" {
		t.Errorf("after the restore: %s", res)
	}
	if res := boxtest.HostRun(t, b, "master-0", run); res.Code != 0 || !strings.Contains(res.Stdout, "already done") {
		t.Errorf("a second run: %s", res)
	}
}

func errString(err error) string {
	if err == nil {
		return "exists"
	}
	return err.Error()
}
