package box

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// HostPath is the PATH of a simulated RHCOS host.
const HostPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// systemDirs are bound read-only from the test machine into every container
// root, so the ordinary tools (sh, tar, sha256sum, mv, ...) exist. A host
// root gets the shared libraries and data (/usr/lib*, /usr/share) but not
// this machine's executables: its /usr/bin and /usr/sbin hold only what an
// RHCOS host has (rhcosBin), and it has no /usr/libexec. /usr/local is
// deliberately not among them: it belongs to the node.
var systemDirs = []string{"usr/bin", "usr/sbin", "usr/lib", "usr/lib64", "usr/libexec", "usr/share"}

// systemEtc are the few files of /etc that the system tools need to run
// (user names, the dynamic loader's cache, Debian's alternatives links).
var systemEtc = []string{"etc/passwd", "etc/group", "etc/nsswitch.conf", "etc/ld.so.cache", "etc/alternatives", "etc/ssl", "etc/localtime"}

var systemDevices = []string{"dev/null", "dev/zero", "dev/full", "dev/random", "dev/urandom"}

// systemClients are the test machine's systemd and CRI clients, which the
// bound system directories would otherwise offer by full path. A host gets
// the box's stand-ins bound over them, a container a refusal (no systemd
// runs in a container), so that nothing run in the box can reach the test
// machine's own init, not even `/usr/bin/systemctl poweroff -ff`. Links
// among them (shutdown -> systemctl) need nothing more.
var systemClients = []string{"usr/bin/systemctl", "usr/bin/systemd-run", "usr/bin/journalctl", "usr/bin/crictl",
	"usr/sbin/shutdown", "usr/sbin/reboot", "usr/sbin/poweroff", "usr/sbin/halt"}

// Sandbox is the root filesystem of one simulated control-plane host. Host
// commands run inside a private mount namespace chrooted to Root, so they see
// the RHCOS layout below and nothing of the machine the box runs on.
type Sandbox struct {
	Node string
	// Root is where the host's "/" lives on the test machine.
	Root string
	// hostBin is bound as the host's /usr/bin and /usr/sbin: RHCOS's
	// executables only (see rhcosBin).
	hostBin string
}

// rhcosDirs is the part of a control-plane host's layout that the procedures touch.
var rhcosDirs = []string{
	"etc/kubernetes/manifests",
	"etc/kubernetes/static-pod-resources",
	"var/lib/etcd",
	"var/lib/kubelet",
	"var/log",
	"home/core/assets",
	"usr/local/bin",
	"root",
	"run",
	"tmp",
	"proc",
}

// NewSandbox lays out a host root for node under dir.
func NewSandbox(dir, node string) (*Sandbox, error) {
	bin, err := rhcosBin()
	if err != nil {
		return nil, err
	}
	s := &Sandbox{Node: node, Root: filepath.Join(dir, "root"), hostBin: bin}
	for _, d := range append(append([]string{}, rhcosDirs...), systemDirs...) {
		if err := os.MkdirAll(filepath.Join(s.Root, d), 0o755); err != nil {
			return nil, err
		}
	}
	if err := os.Chmod(filepath.Join(s.Root, "tmp"), 0o1777); err != nil {
		return nil, err
	}
	for _, l := range []string{"bin", "sbin", "lib", "lib64"} {
		if err := os.Symlink("usr/"+l, filepath.Join(s.Root, l)); err != nil {
			return nil, err
		}
	}
	if err := createMountPoints(s.Root); err != nil {
		return nil, err
	}
	files := map[string]string{
		"etc/hostname":   node + "\n",
		"etc/os-release": "NAME=\"Red Hat Enterprise Linux CoreOS\"\nID=\"rhcos\"\nVERSION_ID=\"4.14\"\nPRETTY_NAME=\"Red Hat Enterprise Linux CoreOS 414 (Plow) (cluster-in-a-box)\"\n",
		"etc/hosts":      "127.0.0.1 localhost\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(s.Root, name), []byte(content), 0o644); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// createMountPoints makes the empty files and directories that the system
// binds of hostScript are mounted on.
func createMountPoints(root string) error {
	for _, d := range systemDirs {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	for _, f := range append(append([]string{}, systemEtc...), systemDevices...) {
		src := "/" + f
		fi, err := os.Stat(src)
		if err != nil {
			continue // not on this machine: the bind is skipped too
		}
		dst := filepath.Join(root, f)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if fi.IsDir() {
			err = os.MkdirAll(dst, 0o755)
		} else if _, statErr := os.Lstat(dst); os.IsNotExist(statErr) {
			err = os.WriteFile(dst, nil, 0o644)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// HostCommand describes a process to start on a simulated host.
type HostCommand struct {
	Argv []string
	Env  []string
	// ContainerRoot, when set, is the root of a container's own filesystem on
	// the test machine: the process runs there and sees the host at /host,
	// as in a node-debug pod. Empty runs the process on the host itself.
	ContainerRoot string
	// HostMountPath is where a container that mounts the host's "/" (a
	// hostPath volume of "/") sees it, usually /host. Empty: not mounted.
	HostMountPath string
	Dir           string
	// Network is the network the process runs in: empty, the host's (the
	// test machine's, where every node has its own loopback address);
	// NewNetwork, a network namespace of its own holding only a loopback;
	// else the path of a network namespace to join (/proc/<pid>/ns/net).
	Network string
}

// NewNetwork asks for a network namespace of the process's own.
const NewNetwork = "new"

// Command prepares the process. It runs in fresh mount and UTS namespaces
// (hostname = node name), chrooted, in its own process group so that
// everything it starts can be killed together.
func (s *Sandbox) Command(ctx context.Context, hc HostCommand) (*exec.Cmd, error) {
	if len(hc.Argv) == 0 {
		return nil, fmt.Errorf("no command")
	}
	if hc.ContainerRoot != "" {
		if hc.HostMountPath != "" {
			if err := os.MkdirAll(filepath.Join(hc.ContainerRoot, hc.HostMountPath), 0o755); err != nil {
				return nil, err
			}
		}
		for _, d := range []string{"tmp", "root", "etc"} {
			if err := os.MkdirAll(filepath.Join(hc.ContainerRoot, d), 0o755); err != nil {
				return nil, err
			}
		}
		for _, l := range []string{"bin", "sbin", "lib", "lib64"} {
			if _, err := os.Lstat(filepath.Join(hc.ContainerRoot, l)); os.IsNotExist(err) {
				if err := os.Symlink("usr/"+l, filepath.Join(hc.ContainerRoot, l)); err != nil {
					return nil, err
				}
			}
		}
		if err := createMountPoints(hc.ContainerRoot); err != nil {
			return nil, err
		}
	}
	args := []string{"--mount", "--uts"}
	if hc.Network == NewNetwork {
		args = append(args, "--net")
	}
	args = append(append(args, "--propagation", "private", "--", "/bin/sh", "-ec", s.hostScript(hc), "oc-recover-box-host"), hc.Argv...)
	name := "unshare"
	if hc.Network != "" && hc.Network != NewNetwork {
		args = append([]string{"--net=" + hc.Network, "--", "unshare"}, args...)
		name = "nsenter"
	}
	cmd := exec.CommandContext(ctx, name, args...)
	env := []string{"PATH=" + HostPath, "HOME=/root"}
	cmd.Env = append(env, hc.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	return cmd, nil
}

// hostScript binds the system directories read-only into the root(s), then
// execs the command under chroot.
func (s *Sandbox) hostScript(hc HostCommand) string {
	var b strings.Builder
	b.WriteString("hostname " + shellQuote(s.Node) + "\n")
	bindSystem := func(root string, host bool) {
		for _, d := range append(append(append([]string{}, systemDirs...), systemEtc...), systemDevices...) {
			src := "/" + d
			if host && (d == "usr/bin" || d == "usr/sbin") {
				// An RHCOS host's executables, not this machine's.
				src = s.hostBin
			} else if host && d == "usr/libexec" {
				continue
			}
			if _, err := os.Stat(src); err != nil {
				continue
			}
			opts := "ro"
			if strings.HasPrefix(d, "dev/") {
				opts = "rw"
			}
			fmt.Fprintf(&b, "mount --bind -o %s %s %s\n", opts, shellQuote(src), shellQuote(filepath.Join(root, d)))
		}
	}
	shadowSystemClients := func(root string, standIn func(name string) string) {
		for _, p := range systemClients {
			if fi, err := os.Lstat("/" + p); err != nil || !fi.Mode().IsRegular() {
				continue
			}
			src := standIn(filepath.Base(p))
			if _, err := os.Stat(src); err != nil {
				continue // not installed (yet)
			}
			fmt.Fprintf(&b, "mount --bind %s %s\n", shellQuote(src), shellQuote(filepath.Join(root, p)))
		}
	}
	bindSystem(s.Root, true)
	root := s.Root
	if hc.ContainerRoot != "" {
		bindSystem(hc.ContainerRoot, false)
		shadowSystemClients(hc.ContainerRoot, func(string) string { return filepath.Join(s.Root, "usr/local/libexec/box/no-systemd") })
		if hc.HostMountPath != "" {
			fmt.Fprintf(&b, "mount --rbind %s %s\n", shellQuote(s.Root), shellQuote(filepath.Join(hc.ContainerRoot, hc.HostMountPath)))
		}
		root = hc.ContainerRoot
	}
	dir := hc.Dir
	if dir == "" {
		dir = "/"
	}
	fmt.Fprintf(&b, "exec chroot %s /bin/sh -c 'cd \"$0\" && exec \"$@\"' %s \"$@\"\n", shellQuote(root), shellQuote(dir))
	return b.String()
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
