package restore

import "github.com/oc-recover/oc-recover/pkg/era"

// Profile is the shape of a release's restore procedure.
type Profile string

const (
	// Legacy is OpenShift 4.4 to 4.17: cluster-restore.sh stops etcd and
	// the kube-apiserver, kube-controller-manager and kube-scheduler pods on
	// the recovery host and starts them from the backup; the other hosts
	// stop theirs by hand; the kubelets are restarted; etcd and then the
	// three other operators are redeployed.
	Legacy Profile = "legacy"
	// Modern is OpenShift 4.18 and later: disable-etcd.sh on every
	// control-plane host, cluster-restore.sh restores etcd alone (with a
	// revision bump), and the etcd operator rolls the members out behind
	// the quorum-guard override.
	Modern Profile = "modern"
)

// ModernMinor is the first 4.x minor of the modern profile.
const ModernMinor = 18

// ProfileFor is the profile of a release.
func ProfileFor(rel *era.Release) Profile {
	if rel.Major > 4 || (rel.Major == 4 && rel.Minor >= ModernMinor) {
		return Modern
	}
	return Legacy
}

// Host paths the etcd operator's scripts share (etcd-common-tools).
const (
	scriptsDir       = "/etc/kubernetes/static-pod-resources/etcd-certs/configmaps/etcd-scripts"
	etcdEnv          = scriptsDir + "/etcd.env"
	etcdCommonTools  = scriptsDir + "/etcd-common-tools"
	restorePodYAML   = "/etc/kubernetes/static-pod-resources/etcd-certs/configmaps/restore-etcd-pod/pod.yaml"
	restoreScript    = "/usr/local/bin/cluster-restore.sh"
	disableScript    = "/usr/local/bin/disable-etcd.sh"
	manifestDir      = "/etc/kubernetes/manifests"
	manifestsStopped = "/home/core/assets/manifests-stopped"
	etcdDataDir      = "/var/lib/etcd"
	etcdDataBackup   = "/var/lib/etcd-backup"
	// StateDir holds a restore's files on every control-plane host: on
	// /var, which a restore does not rewind and a reboot keeps (not /tmp,
	// which on RHCOS is memory), next to /var/lib/etcd so that moving the
	// data aside is a rename.
	StateDir = "/var/lib/oc-recover/restore"
)

// recoveryFiles are what the recovery host needs of the etcd operator:
// its scripts' dependencies and the restore pod the script starts.
func (p Profile) recoveryFiles() []string {
	files := []string{restoreScript, etcdEnv, etcdCommonTools, restorePodYAML}
	if p == Modern {
		files = append(files, disableScript)
	}
	return files
}

// peerFiles are what the other control-plane hosts need: on the modern
// profile they stop etcd with disable-etcd.sh; on the legacy one the static
// pod manifests are moved, which needs nothing of the operator.
func (p Profile) peerFiles() []string {
	if p == Modern {
		return []string{disableScript, etcdEnv, etcdCommonTools}
	}
	return nil
}

// peerManifests are the static pods a peer stops during the restore
// (legacy: all four, OCPBUGS-20194; modern: etcd, by disable-etcd.sh).
func (p Profile) peerManifests() []string {
	if p == Modern {
		return []string{"etcd-pod.yaml"}
	}
	return []string{"etcd-pod.yaml", "kube-apiserver-pod.yaml", "kube-controller-manager-pod.yaml", "kube-scheduler-pod.yaml"}
}
