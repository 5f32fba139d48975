package box

import (
	_ "embed"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

//go:embed hosttools/cluster-backup.sh
var clusterBackupScript []byte

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

// installHostTools puts the host tools in the sandbox's /usr/local/bin and
// the environment file that etcd's scripts source.
func installHostTools(root string, binaries map[string]string, n *Node) error {
	bin := filepath.Join(root, "usr/local/bin")
	for name, src := range binaries {
		if err := linkOrCopy(src, filepath.Join(bin, name)); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(bin, "cluster-backup.sh"), clusterBackupScript, 0o755); err != nil {
		return err
	}
	if !n.Master {
		return nil
	}
	secrets := etcdCertsDir + "/secrets/etcd-all-certs"
	env := strings.Join([]string{
		"export ETCDCTL_API=3",
		"export ETCDCTL_CACERT=" + etcdCertsDir + "/configmaps/etcd-serving-ca/ca-bundle.crt",
		"export ETCDCTL_CERT=" + secrets + "/etcd-peer-" + n.Name + ".crt",
		"export ETCDCTL_KEY=" + secrets + "/etcd-peer-" + n.Name + ".key",
		"export ETCDCTL_ENDPOINTS=https://" + n.IP.String() + ":2379",
		"export NODE_NAME=" + n.Name,
		"export NODE_IP=" + n.IP.String(),
		"",
	}, "\n")
	dir := filepath.Join(root, etcdCertsDir, "configmaps/etcd-scripts")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "etcd.env"), []byte(env), 0o644)
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
