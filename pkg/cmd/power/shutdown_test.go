package power

import (
	"bytes"
	"testing"

	"github.com/oc-recover/oc-recover/pkg/cmd/internal/options"
	"github.com/oc-recover/oc-recover/pkg/power"
)

// The shutdown plan is printed by runbook.Print; these are the bytes it
// printed before, by hand, and must still print.
func TestShutdownPlanText(t *testing.T) {
	targets := []power.Target{
		{Node: "worker-0", Role: power.Worker, Ready: true},
		{Node: "worker-1", Role: power.Worker, Ready: false},
		{Node: "master-0", Role: power.ControlPlane, Ready: true},
	}
	cases := []struct {
		name    string
		o       ShutdownOptions
		targets []power.Target
		want    string
	}{
		{name: "dry run, with a backup and a node not Ready",
			o:       ShutdownOptions{TakeBackup: true, BackupDir: "/srv/etcd-backups", globals: &options.GlobalOptions{DryRun: true}},
			targets: targets,
			want: "Plan (dry run, nothing changed):\n" +
				"  1. take a backup into /srv/etcd-backups (from a healthy control-plane node)\n" +
				"  2. start a debug pod (namespace openshift-recover-*, privileged, host / at /host) on each of the 3 nodes; nothing is scheduled unless every one runs\n" +
				"  3. on the 2 worker node(s), run `chroot /host shutdown -h 1`: worker-0, worker-1\n" +
				"  4. on the 1 control-plane node(s), run `chroot /host shutdown -h 1`: master-0\n" +
				"  5. remove the debug pods and their namespaces, before the minute is up\n" +
				"  If scheduling fails on a node, the shutdowns already scheduled are cancelled (`chroot /host shutdown -c`).\n" +
				"WARNING: not Ready: worker-1; a debug pod may not start there, and then nothing is shut down.\n"},
		{name: "a compact cluster, no backup to take",
			o:       ShutdownOptions{BackupDir: ".", globals: &options.GlobalOptions{}},
			targets: targets[2:],
			want: "Plan:\n" +
				"  1. start a debug pod (namespace openshift-recover-*, privileged, host / at /host) on each of the 1 nodes; nothing is scheduled unless every one runs\n" +
				"  2. on the 1 control-plane node(s), run `chroot /host shutdown -h 1`: master-0\n" +
				"  3. remove the debug pods and their namespaces, before the minute is up\n" +
				"  If scheduling fails on a node, the shutdowns already scheduled are cancelled (`chroot /host shutdown -c`).\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			tc.o.printPlan(&out, tc.targets, tc.o.TakeBackup)
			if out.String() != tc.want {
				t.Errorf("plan:\n%s\nwant:\n%s", out.String(), tc.want)
			}
		})
	}
}
