package restore

import (
	"strings"
	"testing"
	"time"

	"github.com/oc-recover/oc-recover/pkg/era"
)

func TestParseProbe(t *testing.T) {
	now := time.Unix(1764652500, 0)
	out := strings.Join([]string{
		"noise",
		probeMarker + " file " + restoreScript,
		probeMarker + " file " + etcdEnv,
		probeMarker + " var-avail 123456789",
		probeMarker + " etcd-size 4096",
		probeMarker + " etcd-entry revision.json",
		probeMarker + " etcd-entry member",
		probeMarker + " etcd-entry etcd_perf.log",
		probeMarker + " etcd-backup-member 777",
		probeMarker + " staged 20261101T000000Z-abcd",
		probeMarker + " systemd-run /usr/bin/systemd-run",
		probeMarker + " tmp-fs tmpfs",
		probeMarker + " clock 1764652503",
	}, "\n")
	h := parseProbe("master-0", out, now)
	if h.VarAvail != 123456789 || h.EtcdSize != 4096 || h.EtcdBackupMember != 777 || h.SystemdRun != "/usr/bin/systemd-run" || h.TmpFS != "tmpfs" || h.ClockSkew != 3*time.Second {
		t.Errorf("probe %+v", h)
	}
	if m := h.missing([]string{restoreScript, etcdEnv, restorePodYAML}); len(m) != 1 || m[0] != restorePodYAML {
		t.Errorf("missing %v, want the restore pod alone", m)
	}
	if e := h.etcdExtras(); len(e) != 1 || e[0] != "etcd_perf.log" {
		t.Errorf("extras %v", e)
	}
	if h := parseProbe("m", "", now); h.VarAvail != -1 || h.EtcdBackupMember != -1 {
		t.Errorf("an empty probe: %+v, want unknowns", h)
	}
}

func TestProfiles(t *testing.T) {
	for v, want := range map[string]Profile{"4.4.8": Legacy, "4.14.10": Legacy, "4.17.3": Legacy, "4.18.0": Modern, "4.20.1": Modern} {
		rel, _ := era.Parse(v)
		if got := ProfileFor(rel); got != want {
			t.Errorf("%s: %s, want %s", v, got, want)
		}
	}
}

// The plan follows the profile: legacy stops all four static pods on the
// peers, restarts kubelets and redeploys all four operators; modern stops
// etcd alone with disable-etcd.sh. Data is moved, never to /tmp.
func TestPlanStepsFollowTheProfile(t *testing.T) {
	base := func(p Profile) *Plan {
		return &Plan{ID: "20261202T050000Z-abcd", Profile: p, Recovery: Host{Name: "master-0"}, Peers: []Host{{Name: "master-1"}, {Name: "master-2"}},
			Backup: BackupInfo{Snapshot: "snapshot_x.db", Resources: "static_kuberesources_x.tar.gz"},
			Hosts:  []HostProbe{{Node: "master-0", EtcdBackupMember: 10, EtcdEntries: []string{"member", "stray"}}, {Node: "master-1", EtcdBackupMember: -1, EtcdMountPoint: true}, {Node: "master-2", EtcdBackupMember: -1}}}
	}
	text := func(p *Plan) string {
		var b strings.Builder
		for _, s := range p.steps() {
			b.WriteString(s.Phase + " " + s.Node + ": " + s.Action + " | " + s.Command + "\n")
		}
		return b.String()
	}
	legacy, modern := text(base(Legacy)), text(base(Modern))
	for _, want := range []string{
		"B master-1: stop etcd, kube-apiserver, kube-controller-manager and kube-scheduler",
		"mv /etc/kubernetes/manifests/kube-scheduler-pod.yaml /var/lib/oc-recover/restore/20261202T050000Z-abcd/manifests/",
		"B master-1: restart the kubelet",
		"kubescheduler/cluster spec.forceRedeploymentReason",
		// master-1's /var/lib/etcd is a mount point: renamed within it.
		"mv /var/lib/etcd/member /var/lib/etcd/.oc-recover-20261202T050000Z-abcd-member",
		"mv /var/lib/etcd /var/lib/oc-recover/restore/20261202T050000Z-abcd/etcd-data && install -d -m 0700 /var/lib/etcd",
		"mv /var/lib/etcd-backup/member /var/lib/oc-recover/restore/20261202T050000Z-abcd/prior/etcd-backup-member",
		"mv /var/lib/etcd/stray /var/lib/oc-recover/restore/20261202T050000Z-abcd/prior/",
		"/usr/local/bin/cluster-restore.sh /var/lib/oc-recover/restore/20261202T050000Z-abcd/backup",
	} {
		if !strings.Contains(legacy, want) {
			t.Errorf("legacy plan lacks %q:\n%s", want, legacy)
		}
	}
	for _, want := range []string{"B master-1: stop etcd | /usr/local/bin/disable-etcd.sh", "B master-0: stop etcd | /usr/local/bin/disable-etcd.sh"} {
		if !strings.Contains(modern, want) {
			t.Errorf("modern plan lacks %q:\n%s", want, modern)
		}
	}
	for _, not := range []string{"restart the kubelet", "kubeapiserver/cluster", "kube-apiserver-pod.yaml"} {
		if strings.Contains(modern, not) {
			t.Errorf("modern plan has %q:\n%s", not, modern)
		}
	}
	for _, plan := range []string{legacy, modern} {
		if strings.Contains(plan, "/tmp") || strings.Contains(plan, "| rm ") || strings.Contains(plan, "; rm ") || strings.Contains(plan, "&& rm ") {
			t.Errorf("a plan moves to /tmp or deletes:\n%s", plan)
		}
	}
}
