package e2e

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/oc-recover/oc-recover/test/box"
	"github.com/oc-recover/oc-recover/test/internal/boxtest"
)

// assertEmptyDir fails unless dir exists and holds nothing: a backup that
// failed left no directory that looks like one beside the others.
func assertEmptyDir(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("%s holds %s after a failed backup, want nothing", dir, e.Name())
	}
}

// `shutdown --backup` and `member replace --backup` take the backup the
// runbook asks for before anything else; when that backup fails they stop,
// change nothing, and leave no directory behind in --backup-dir (a
// directory there would be taken for a backup by the next `backup list`).
func TestBackupFirstFailsLeavingNothing(t *testing.T) {
	t.Parallel()
	b := boxtest.StartBox(t, box.Options{})
	ctx := context.Background()
	for _, node := range []string{"master-0", "master-1", "master-2"} {
		replaceHostTool(t, b, node, "cluster-backup.sh", "#!/bin/bash\necho \"snapshot save failed: context deadline exceeded\" >&2\nexit 1\n")
	}
	backups := t.TempDir()

	r := tools.Run(t, b, "", "kubectl-recover", "shutdown", "--backup", "--backup-dir", backups, "--yes")
	if r.Code != 1 || !strings.Contains(r.Stderr, "the backup taken before the shutdown failed, nothing was shut down") {
		t.Fatalf("shutdown --backup with a failing backup: want exit 1 saying nothing was shut down:\n%s", r)
	}
	assertEmptyDir(t, backups)

	boxtest.StopMachineAndWait(t, b, "master-0")
	before := clusterState(t, b)
	r = tools.Run(t, b, "", "kubectl-recover", "member", "replace", "master-0", "--backup", "--backup-dir", backups, "--yes")
	if r.Code != 1 || !strings.Contains(r.Stderr, "the backup taken before the replacement failed, nothing else was changed") {
		t.Fatalf("member replace --backup with a failing backup: want exit 1 saying nothing else was changed:\n%s", r)
	}
	assertEmptyDir(t, backups)
	if after := clusterState(t, b); after != before {
		t.Errorf("member replace --backup changed the cluster although its backup failed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	for _, node := range []string{"master-1", "master-2"} {
		assertNoHostCopies(t, b, node)
	}
	waitNoLeftovers(t, ctx, b.Kube)
}
