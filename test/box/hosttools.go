package box

import (
	"embed"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// hostScripts are the stand-ins for RHCOS's host tools, by their path on
// the host. systemd.sh is systemctl under every name in systemdNames.
var hostScripts = map[string]string{
	"usr/local/bin/cluster-backup.sh":  "hosttools/cluster-backup.sh",
	"usr/local/bin/cluster-restore.sh": "hosttools/cluster-restore.sh",
	"usr/local/bin/crictl":             "hosttools/crictl",
	"usr/local/bin/journalctl":         "hosttools/journalctl",
	"usr/local/bin/systemctl":          "hosttools/systemd.sh",
	"usr/local/libexec/box/no-systemd": "hosttools/no-systemd.sh",
}

// systemdNames are the other names of systemctl on a host.
var systemdNames = []string{"systemd-run", "shutdown", "reboot", "poweroff", "halt"}

//go:embed hosttools
var hostToolFiles embed.FS

var (
	toolsOnce sync.Once
	toolsErr  error
	tools     map[string]string
)

// hostToolBinaries builds the real etcdctl and etcdutl (the versions the box's
// etcd runs) once per process, into the test module's .bin directory.
func hostToolBinaries() (map[string]string, error) {
	toolsOnce.Do(func() {
		dir := filepath.Join(moduleDir(), ".bin")
		pkgs := map[string]string{"etcdctl": "go.etcd.io/etcd/etcdctl/v3", "etcdutl": "go.etcd.io/etcd/etcdutl/v3"}
		tools = map[string]string{}
		for name, pkg := range pkgs {
			out := filepath.Join(dir, name)
			cmd := exec.Command("go", "build", "-o", out, pkg)
			cmd.Dir = moduleDir()
			if msg, err := cmd.CombinedOutput(); err != nil {
				toolsErr = fmt.Errorf("build %s: %v\n%s", name, err, msg)
				return
			}
			tools[name] = out
		}
	})
	return tools, toolsErr
}

// installHostTools puts the host tools in the sandbox's /usr/local/bin and,
// on control-plane hosts, the files that etcd's scripts source: etcd.env
// (this node's member and every member's address, as the etcd operator
// writes it) and etcd-common-tools.
func installHostTools(root string, binaries map[string]string, n *Node, masters []*Node) error {
	bin := filepath.Join(root, "usr/local/bin")
	for name, src := range binaries {
		if err := linkOrCopy(src, filepath.Join(bin, name)); err != nil {
			return err
		}
	}
	for path, file := range hostScripts {
		if err := installHostFile(root, path, file, 0o755); err != nil {
			return err
		}
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
	secrets := etcdCertsDir + "/secrets/etcd-all-certs"
	env := []string{
		"export ETCDCTL_CACERT=" + etcdCertsDir + "/configmaps/etcd-serving-ca/ca-bundle.crt",
		"export ETCDCTL_CERT=" + secrets + "/etcd-peer-" + n.Name + ".crt",
		"export ETCDCTL_KEY=" + secrets + "/etcd-peer-" + n.Name + ".key",
		"export ETCDCTL_ENDPOINTS=https://" + n.IP.String() + ":2379",
		"export NODE_NAME=" + n.Name,
		"export NODE_IP=" + n.IP.String(),
	}
	var all []string
	for _, m := range masters {
		v := "NODE_" + strings.NewReplacer("-", "_", ".", "_").Replace(m.Name)
		env = append(env, "export "+v+"_ETCD_NAME="+m.Name, "export "+v+"_IP="+m.IP.String(),
			"export "+v+"_ETCD_URL_HOST="+m.IP.String())
		all = append(all, "https://"+m.IP.String()+":2379")
	}
	env = append(env, "export ALL_ETCD_ENDPOINTS="+strings.Join(all, ","), "")
	dir := filepath.Join(etcdCertsDir, "configmaps/etcd-scripts")
	if err := os.MkdirAll(filepath.Join(root, dir), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(root, dir, "etcd.env"), []byte(strings.Join(env, "\n")), 0o644); err != nil {
		return err
	}
	return installHostFile(root, filepath.Join(dir, "etcd-common-tools"), "hosttools/etcd-common-tools", 0o644)
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
