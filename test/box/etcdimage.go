package box

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"

	corev1 "k8s.io/api/core/v1"
)

// etcdClientVersion is the etcd release whose etcdctl and etcdutl the box's
// etcd images hold. OpenShift 4.14 and 4.18 ship etcd 3.5. 4.5 and 4.8
// ship 3.4, whose module (go.etcd.io/etcd, without /v3) the module proxy
// serves only as pseudo-versions: their images get 3.5's etcdctl as well
// (without etcdutl, which 3.4 did not have). 3.5's etcdctl still has
// `snapshot status`, so 4.8's integrity check really checks; the box's own
// etcd server stays 3.6.
const etcdClientVersion = "v3.5.21"

var (
	etcdClientsOnce sync.Once
	etcdClients     map[string]string
	etcdClientsErr  error
)

// etcdImageClients builds etcdctl and etcdutl of etcdClientVersion once
// per machine into the test module's .bin, in a module of their own (the
// test module's etcd is 3.6). `go install pkg@version` refuses etcd's
// modules (their go.mod files hold replace directives), so a throw-away
// module requires both at that version.
func etcdImageClients() (map[string]string, error) {
	etcdClientsOnce.Do(func() {
		dir := filepath.Join(moduleDir(), ".bin", "etcd-"+etcdClientVersion)
		out := map[string]string{"etcdctl": filepath.Join(dir, "etcdctl"), "etcdutl": filepath.Join(dir, "etcdutl")}
		if exists(out["etcdctl"]) && exists(out["etcdutl"]) {
			etcdClients = out
			return
		}
		mod, err := os.MkdirTemp(filepath.Join(moduleDir(), ".bin"), "etcd-build-")
		if err != nil {
			etcdClientsErr = err
			return
		}
		defer os.RemoveAll(mod)
		tools := "//go:build tools\n\npackage tools\n\nimport (\n\t_ \"go.etcd.io/etcd/etcdctl/v3\"\n\t_ \"go.etcd.io/etcd/etcdutl/v3\"\n)\n"
		if err := os.WriteFile(filepath.Join(mod, "go.mod"), []byte("module boxetcdclients\n\ngo 1.23\n"), 0o644); err != nil {
			etcdClientsErr = err
			return
		}
		if err := os.WriteFile(filepath.Join(mod, "tools.go"), []byte(tools), 0o644); err != nil {
			etcdClientsErr = err
			return
		}
		steps := [][]string{
			{"get", "go.etcd.io/etcd/etcdctl/v3@" + etcdClientVersion, "go.etcd.io/etcd/etcdutl/v3@" + etcdClientVersion},
			{"build", "-o", filepath.Join(mod, "etcdctl"), "go.etcd.io/etcd/etcdctl/v3"},
			{"build", "-o", filepath.Join(mod, "etcdutl"), "go.etcd.io/etcd/etcdutl/v3"},
		}
		for _, args := range steps {
			cmd := exec.Command("go", args...)
			cmd.Dir = mod
			cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
			if msg, err := cmd.CombinedOutput(); err != nil {
				etcdClientsErr = fmt.Errorf("etcd %s clients: go %v: %v\n%s", etcdClientVersion, args, err, msg)
				return
			}
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			etcdClientsErr = err
			return
		}
		for name, dst := range out {
			if err := os.Rename(filepath.Join(mod, name), dst); err != nil {
				etcdClientsErr = err
				return
			}
		}
		etcdClients = out
	})
	return etcdClients, etcdClientsErr
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// imageStore is where a host's podman keeps its images: one directory per
// image under images/, named in the index images/index (one
// "<reference>\t<dir>" a line), each holding the image's root filesystem
// in rootfs/. Containers are under containers/.
const imageStore = "/var/lib/containers/storage"

// installEtcdImage puts the release's etcd image into a control-plane
// host's image store, as the node has it pulled: /bin/etcdctl, and
// /bin/etcdutl and /bin/jq where that release's image has them.
func installEtcdImage(root string, p hostProfile) error {
	clients, err := etcdImageClients()
	if err != nil {
		return err
	}
	image := etcdImageFor(p)
	rel := "images/etcd-" + p.Release
	bin := filepath.Join(root, imageStore, rel, "rootfs/bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return err
	}
	files := map[string]string{"etcdctl": clients["etcdctl"]}
	if p.Etcdutl {
		files["etcdutl"] = clients["etcdutl"]
	}
	if p.Jq {
		if jq := findSystemTool("jq"); jq != "" {
			files["jq"] = jq
		}
	}
	for name, src := range files {
		if err := linkOrCopy(src, filepath.Join(bin, name)); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Join(root, imageStore, "containers"), 0o700); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(root, imageStore, "images/index"), []byte(image+"\t"+rel+"\n"), 0o644)
}

// RemoveEtcdImage deletes the etcd image from node's image store, as
// `podman rmi` would: the etcd scripts then cannot copy etcdctl out of it.
func (b *Box) RemoveEtcdImage(node string) error {
	n := b.Node(node)
	if n == nil {
		return fmt.Errorf("no node %s", node)
	}
	store := filepath.Join(n.Sandbox.Root, imageStore)
	if err := os.RemoveAll(filepath.Join(store, "images/etcd-"+profileFor(b.opts.Version).Release)); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(store, "images/index"), nil, 0o644)
}

// staticPodCommand completes how a static pod's container runs on its host:
// the etcd pod's containers run from the etcd image, whose /bin (etcdctl,
// etcdutl) the host's PATH lacks; the box adds the image's directory in
// the host's store to their PATH.
func staticPodCommand(pod *corev1.Pod, hc HostCommand) HostCommand {
	if pod.Namespace != "openshift-etcd" {
		return hc
	}
	path := HostPath
	for _, p := range hostProfiles {
		path += ":" + imageStore + "/images/etcd-" + p.Release + "/rootfs/bin"
	}
	hc.Env = append(hc.Env, "PATH="+path)
	return hc
}
