package box

import (
	"embed"
	"io"
	"os"
	"path/filepath"
)

// hostScripts are the stand-ins for RHCOS's host tools, by their path on
// the host. systemd.sh is systemctl under every name in systemdNames. The
// release's cluster-backup.sh and etcd-common-tools come from its profile.
var hostScripts = map[string]string{
	"usr/local/bin/chronyc":            "hosttools/chronyc",
	"usr/local/bin/cluster-restore.sh": "hosttools/cluster-restore.sh",
	"usr/local/bin/crictl":             "hosttools/crictl",
	"usr/local/bin/df":                 "hosttools/df",
	"usr/local/bin/journalctl":         "hosttools/journalctl",
	"usr/local/bin/podman":             "hosttools/podman",
	"usr/local/bin/systemctl":          "hosttools/systemd.sh",
	"usr/local/libexec/box/no-systemd": "hosttools/no-systemd.sh",
}

// systemdNames are the other names of systemctl on a host.
var systemdNames = []string{"systemd-run", "shutdown", "reboot", "poweroff", "halt"}

//go:embed hosttools
var hostToolFiles embed.FS

// localhostKubeconfig is where a control-plane host keeps the kubeconfig
// of its own kube-apiserver, which the etcd scripts give oc.
const localhostKubeconfig = "/etc/kubernetes/static-pod-resources/kube-apiserver-certs/secrets/node-kubeconfigs/localhost.kubeconfig"

// installHostTools puts the host tools in the sandbox's /usr/local/bin and,
// on control-plane hosts, what the etcd operator and the installer leave
// there for the release's profile: cluster-backup.sh, etcd.env and
// etcd-common-tools, the etcd image in podman's store, and the node's
// localhost kubeconfig naming its own kube-apiserver (started here). etcdctl and etcdutl are not installed: the scripts
// copy them out of the etcd image.
func (b *Box) installHostTools(root string, n *Node, masters []*Node) error {
	p := profileFor(b.opts.Version)
	bin := filepath.Join(root, "usr/local/bin")
	for path, file := range hostScripts {
		if err := installHostFile(root, path, file, 0o755); err != nil {
			return err
		}
	}
	if err := writeHostState(root); err != nil {
		return err
	}
	for _, name := range systemdNames {
		link := filepath.Join(bin, name)
		_ = os.Remove(link)
		if err := os.Symlink("systemctl", link); err != nil {
			return err
		}
	}
	if !n.Master {
		return nil
	}
	if err := installHostFile(root, "usr/local/bin/cluster-backup.sh", "hosttools/"+p.BackupScript, 0o755); err != nil {
		return err
	}
	if p.DisableScript != "" {
		if err := installHostFile(root, "usr/local/bin/disable-etcd.sh", "hosttools/"+p.DisableScript, 0o755); err != nil {
			return err
		}
	}
	if err := writeRestorePod(root, p); err != nil {
		return err
	}
	dir := filepath.Join(etcdCertsDir, "configmaps/etcd-scripts")
	if err := os.MkdirAll(filepath.Join(root, dir), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(root, dir, "etcd.env"), []byte(etcdEnv(p, n.Name, masters, b.opts.EtcdQuotaBytes)), 0o644); err != nil {
		return err
	}
	if err := installHostFile(root, filepath.Join(dir, "etcd-common-tools"), "hosttools/"+p.CommonTools, 0o644); err != nil {
		return err
	}
	if err := installEtcdImage(root, p); err != nil {
		return err
	}
	if err := b.writeLocalhostKubeconfig(root, n); err != nil {
		return err
	}
	return b.startNodeAPIServer(n)
}

// installHostFile writes one of hostToolFiles at path on the host.
func installHostFile(root, path, file string, mode os.FileMode) error {
	data, err := hostToolFiles.ReadFile(file)
	if err != nil {
		return err
	}
	dst := filepath.Join(root, path)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dst, data, mode)
}

func linkOrCopy(src, dst string) error {
	_ = os.Remove(dst)
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// writeRestorePod writes the restore pod manifest that the etcd operator's
// restore-etcd-pod config map puts on every control-plane host, and that
// cluster-restore.sh starts as etcd-pod.yaml: a pod named etcd in
// openshift-etcd, with the labels of the etcd pods, whose etcd container
// restores /var/lib/etcd-backup/snapshot.db into an empty /var/lib/etcd and
// runs a one-member etcd (4.18 adds etcd-readyz).
func writeRestorePod(root string, p hostProfile) error {
	containers := `  - name: etcd
    image: ` + etcdImageRepo + `restore
    command: ["/bin/sh", "-c", "restore /var/lib/etcd-backup/snapshot.db into /var/lib/etcd, then exec etcd"]
`
	if minorOf(p.Release) >= 18 {
		containers += `  - name: etcd-readyz
    image: ` + etcdImageRepo + `restore
`
	}
	manifest := `apiVersion: v1
kind: Pod
metadata:
  name: etcd
  namespace: openshift-etcd
  labels:
    app: etcd
    k8s-app: etcd
    etcd: "true"
    revision: "REVISION"
spec:
  hostNetwork: true
  priorityClassName: system-node-critical
  containers:
` + containers
	path := filepath.Join(root, etcdCertsDir, "configmaps/restore-etcd-pod/pod.yaml")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(manifest), 0o644)
}
