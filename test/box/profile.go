package box

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// hostProfile is what a control-plane host of one OpenShift release has of
// the etcd operator's: its scripts (stand-ins written from each release's
// bindata/etcd), the etcd.env it generates (pkg/etcdenvvar) and the etcd
// image's clients.
type hostProfile struct {
	// Release is the modelled release: 4.5, 4.8, 4.14 or 4.18.
	Release string
	// BackupScript and CommonTools name the stand-ins in hosttools/.
	BackupScript, CommonTools string
	// CACert is etcd.env's ETCDCTL_CACERT; PeerSecrets the directory of
	// ETCDCTL_CERT and ETCDCTL_KEY (both under static-pod-certs).
	CACert, PeerSecrets string
	// DisableScript names the stand-in of disable-etcd.sh (4.18 and later).
	DisableScript string
	// Etcdutl and Jq: the etcd image holds /bin/etcdutl, /bin/jq.
	Etcdutl, Jq bool
	// Fixed are the release's FixedEtcdEnvVars.
	Fixed map[string]string
}

const staticPodCerts = "/etc/kubernetes/static-pod-certs"

// The etcd images of the modelled releases (digests made up: the box's
// registry is the host's image store).
const etcdImageRepo = "quay.io/openshift-release-dev/ocp-v4.0-art-dev@sha256:"

var hostProfiles = []hostProfile{
	{Release: "4.5", BackupScript: "4.5/cluster-backup.sh", CommonTools: "4.5/etcd-common-tools",
		CACert: staticPodCerts + "/configmaps/etcd-serving-ca/ca-bundle.crt", PeerSecrets: staticPodCerts + "/secrets/etcd-all-peer",
		Fixed: map[string]string{"ETCD_DATA_DIR": "/var/lib/etcd", "ETCD_QUOTA_BACKEND_BYTES": "7516192768", "ETCD_INITIAL_CLUSTER_STATE": "existing"}},
	{Release: "4.8", BackupScript: "4.8/cluster-backup.sh", CommonTools: "4.8/etcd-common-tools",
		CACert: staticPodCerts + "/configmaps/etcd-serving-ca/ca-bundle.crt", PeerSecrets: staticPodCerts + "/secrets/etcd-all-certs",
		Fixed: map[string]string{"ETCD_DATA_DIR": "/var/lib/etcd", "ETCD_QUOTA_BACKEND_BYTES": "7516192768", "ETCD_INITIAL_CLUSTER_STATE": "existing",
			"ETCD_ENABLE_PPROF": "true", "ETCD_EXPERIMENTAL_WATCH_PROGRESS_NOTIFY_INTERVAL": "5s", "ETCD_SOCKET_REUSE_ADDRESS": "true"}},
	{Release: "4.14", BackupScript: "4.14/cluster-backup.sh", CommonTools: "4.14/etcd-common-tools", Etcdutl: true,
		CACert: staticPodCerts + "/configmaps/etcd-serving-ca/ca-bundle.crt", PeerSecrets: staticPodCerts + "/secrets/etcd-all-certs",
		Fixed: map[string]string{"ETCD_DATA_DIR": "/var/lib/etcd", "ETCD_QUOTA_BACKEND_BYTES": "8589934592", "ETCD_INITIAL_CLUSTER_STATE": "existing",
			"ETCD_ENABLE_PPROF": "true", "ETCD_EXPERIMENTAL_WATCH_PROGRESS_NOTIFY_INTERVAL": "5s", "ETCD_SOCKET_REUSE_ADDRESS": "true",
			"ETCD_EXPERIMENTAL_WARNING_APPLY_DURATION": "200ms"}},
	// 4.18's cluster-backup.sh is 4.14's; its etcd-common-tools also copies
	// jq out of the image, and etcd.env names the all-bundles CA (4.17+).
	{Release: "4.18", BackupScript: "4.14/cluster-backup.sh", CommonTools: "4.18/etcd-common-tools", DisableScript: "4.18/disable-etcd.sh", Etcdutl: true, Jq: true,
		CACert: staticPodCerts + "/configmaps/etcd-all-bundles/server-ca-bundle.crt", PeerSecrets: staticPodCerts + "/secrets/etcd-all-certs",
		Fixed: map[string]string{"ETCD_DATA_DIR": "/var/lib/etcd", "ETCD_QUOTA_BACKEND_BYTES": "8589934592", "ETCD_INITIAL_CLUSTER_STATE": "existing",
			"ETCD_ENABLE_PPROF": "true", "ETCD_EXPERIMENTAL_WATCH_PROGRESS_NOTIFY_INTERVAL": "5s", "ETCD_SOCKET_REUSE_ADDRESS": "true",
			"ETCD_EXPERIMENTAL_WARNING_APPLY_DURATION": "200ms"}},
}

// minorOf is the 4.x minor of an OpenShift version (14 when it cannot be
// read; 5 for anything that is not 4.x).
func minorOf(version string) int {
	parts := strings.SplitN(version, ".", 3)
	minor := 14
	if len(parts) >= 2 {
		if m, err := strconv.Atoi(parts[1]); err == nil {
			minor = m
		}
	}
	if len(parts) >= 1 && parts[0] != "4" {
		minor = 5
	}
	return minor
}

// profileFor picks the host profile of an OpenShift version: the modelled
// release at or below its minor; 4.4 and anything older get 4.5's (era
// detection elsewhere refuses what is older than 4.4).
func profileFor(version string) hostProfile {
	minor := minorOf(version)
	best := hostProfiles[0]
	for _, p := range hostProfiles {
		if pm, _ := strconv.Atoi(strings.TrimPrefix(p.Release, "4.")); pm <= minor {
			best = p
		}
	}
	return best
}

// EtcdImage is the etcd image of this box's release (etcd.env's ETCD_IMAGE),
// which every control-plane host holds in its image store.
func (b *Box) EtcdImage() string { return etcdImageFor(profileFor(b.opts.Version)) }

func etcdImageFor(p hostProfile) string {
	h := fmt.Sprintf("%x", "etcd-"+p.Release)
	return etcdImageRepo + (strings.Repeat(h, 64/len(h)+1))[:64]
}

// envVarSafe is the operator's envVarSafe: a node name as part of a
// variable name.
func envVarSafe(name string) string {
	return strings.NewReplacer("-", "_", ".", "_").Replace(name)
}

// etcdEnv is the etcd.env the operator's script controller writes for the
// given members: `export KEY="value"`, one a line, keys sorted, values
// quoted as Go does (%q). The operator writes the peer certificate of
// "NODE_NAME" into ETCDCTL_CERT and ETCDCTL_KEY, a placeholder for the
// host's node name; the box writes each host's file with its own name in
// its place (where the real placeholder is substituted, if at all, the
// box does not model). No variable names the local node.
func etcdEnv(p hostProfile, node string, masters []*Node, quotaBytes int64) string {
	vars := fixedEtcdEnv(p, quotaBytes)
	var eps []string
	for _, m := range masters {
		v := "NODE_" + envVarSafe(m.Name)
		vars[v+"_ETCD_NAME"] = m.Name
		vars[v+"_IP"] = m.IP.String()
		vars[v+"_ETCD_URL_HOST"] = m.IP.String()
		eps = append(eps, "https://"+m.IP.String()+":2379")
	}
	vars["ETCDCTL_API"] = "3"
	vars["ETCDCTL_CACERT"] = p.CACert
	vars["ETCDCTL_CERT"] = p.PeerSecrets + "/etcd-peer-" + node + ".crt"
	vars["ETCDCTL_KEY"] = p.PeerSecrets + "/etcd-peer-" + node + ".key"
	vars["ETCDCTL_ENDPOINTS"] = strings.Join(eps, ",")
	vars["ALL_ETCD_ENDPOINTS"] = strings.Join(eps, ",")
	vars["ETCD_IMAGE"] = etcdImageFor(p)
	vars["ETCD_HEARTBEAT_INTERVAL"] = "100"
	vars["ETCD_ELECTION_TIMEOUT"] = "1000"
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "export %v=%q\n", k, vars[k])
	}
	return b.String()
}

// fixedEtcdEnv is the release's FixedEtcdEnvVars with the box's backend
// quota in place of the release's: the quota a box's members enforce is
// the one its pods and etcd.env declare, as on a cluster.
func fixedEtcdEnv(p hostProfile, quotaBytes int64) map[string]string {
	vars := make(map[string]string, len(p.Fixed))
	for k, v := range p.Fixed {
		vars[k] = v
	}
	vars["ETCD_QUOTA_BACKEND_BYTES"] = strconv.FormatInt(quotaBytes, 10)
	return vars
}

// etcdComputedEnv is the part of the etcd operator's computed environment
// that every container of the box's etcd pods carries (the real pod.yaml
// puts ${COMPUTED_ENV_VARS} in each container): the fixed variables.
func (b *Box) etcdComputedEnv() map[string]string {
	return fixedEtcdEnv(profileFor(b.opts.Version), b.opts.EtcdQuotaBytes)
}

// defaultEtcdQuota is the backend quota the etcd operator of a release
// sets: 7 GiB until 4.8, 8 GiB from 4.9 (pkg/etcdenvvar).
func defaultEtcdQuota(version string) int64 {
	if minorOf(version) < 9 {
		return 7 << 30
	}
	return 8 << 30
}

// writeReleaseCertLayout adds to a host's etcd-certs what its release names
// in etcd.env beyond the etcd-all-certs secrets and the CA config maps:
// 4.4/4.5's peer certificates in secrets/etcd-all-peer (here a link to
// etcd-all-certs, which holds them), 4.17+'s CA bundles in
// configmaps/etcd-all-bundles.
func (b *Box) writeReleaseCertLayout(root string) error {
	p := profileFor(b.opts.Version)
	certs := filepath.Join(root, etcdCertsDir)
	if p.Release == "4.5" {
		link := filepath.Join(certs, "secrets/etcd-all-peer")
		if _, err := os.Lstat(link); os.IsNotExist(err) {
			if err := os.Symlink("etcd-all-certs", link); err != nil {
				return err
			}
		}
	}
	if p.Release == "4.18" {
		dir := filepath.Join(certs, "configmaps/etcd-all-bundles")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, "server-ca-bundle.crt"), b.etcdPKI.ca.CertPEM, 0o644)
	}
	return nil
}
