package box

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// rhcosTools are the executables of an RHCOS host's /usr/bin and /usr/sbin
// that the box takes from the test machine: the shell, coreutils,
// findutils, grep, sed, gawk, diffutils, which, hostname, tar and the
// compressors, openssl, util-linux, procps-ng, iproute2 and curl. A name
// the test machine lacks is left out. df is a stand-in (hosttools/df): the
// real one would report the test machine's disk. Deliberately not here, as RHCOS has
// none of them: etcdctl and etcdutl (the etcd scripts copy them out of the
// etcd image with podman), jq (4.18's scripts copy it out of the etcd image
// when the host lacks it), python3, go, git, and the like. Tools RHCOS may
// ship but whose presence the box does not rely on (rsync, vi, less, ...)
// are left out too.
var rhcosTools = strings.Fields(`
bash sh
arch b2sum base32 base64 basename cat chcon chgrp chmod chown chroot cksum comm cp csplit cut date dd dir
dircolors dirname du echo env expand expr factor false fmt fold groups head hostid id install join link ln
logname ls md5sum mkdir mkfifo mknod mktemp mv nice nl nohup nproc numfmt od paste pathchk pinky pr printenv
printf ptx pwd readlink realpath rm rmdir runcon seq sha1sum sha224sum sha256sum sha384sum sha512sum shred
shuf sleep sort split stat stdbuf stty sum sync tac tail tee test [ timeout touch tr true truncate tsort tty
uname unexpand uniq unlink users vdir wc who whoami yes
find xargs
grep egrep fgrep
sed
gawk awk
diff diff3 cmp sdiff
which hostname
tar gzip gunzip zcat xz unxz xzcat zstd unzstd zstdcat
openssl
mount umount flock nsenter unshare findmnt lsblk blkid losetup mountpoint getopt kill logger lscpu lsns
more mesg renice script setsid taskset uuidgen wall whereis fallocate fstrim ionice lsipc lslocks lsmem
ps pgrep pkill pidof top free uptime vmstat watch w sysctl pmap pwdx
ip ss bridge
curl
`)

// rhcosStandIns are the box's stand-ins that RHCOS has in /usr/bin and
// /usr/sbin: links to the host's own copies in /usr/local/bin, which the
// box installs on every host (the systemd tools talk to that host's agent;
// chronyc and df report the host's simulated clock and disk).
var rhcosStandIns = []string{"systemctl", "systemd-run", "journalctl", "crictl", "podman",
	"shutdown", "reboot", "poweroff", "halt", "chronyc", "df"}

var (
	rhcosBinOnce sync.Once
	rhcosBinDir  string
	rhcosBinErr  error
)

// rhcosBin is a directory holding exactly the executables of an RHCOS host
// (rhcosTools copied from this machine, the stand-ins as links, and the
// real kubectl as oc and kubectl), built once per process in the test
// module's .bin. Every host binds it read-only as /usr/bin and /usr/sbin.
func rhcosBin() (string, error) {
	rhcosBinOnce.Do(func() { rhcosBinDir, rhcosBinErr = buildRHCOSBin() })
	return rhcosBinDir, rhcosBinErr
}

func buildRHCOSBin() (string, error) {
	kubectl, err := kubectlBinary()
	if err != nil {
		return "", err
	}
	parent := filepath.Join(moduleDir(), ".bin")
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", err
	}
	removeStaleRHCOSBins(parent)
	dir, err := os.MkdirTemp(parent, "rhcos-bin-")
	if err != nil {
		return "", err
	}
	found := map[string]bool{}
	for _, name := range rhcosTools {
		src := findSystemTool(name)
		if src == "" {
			continue
		}
		if err := linkOrCopy(src, filepath.Join(dir, name)); err != nil {
			return "", fmt.Errorf("rhcos bin %s: %w", name, err)
		}
		found[name] = true
	}
	for _, must := range []string{"bash", "sh", "tar", "sed", "grep", "mount", "umount", "unshare", "flock"} {
		if !found[must] {
			return "", fmt.Errorf("rhcos bin: this machine has no %s", must)
		}
	}
	if !found["awk"] && found["gawk"] {
		if err := os.Symlink("gawk", filepath.Join(dir, "awk")); err != nil {
			return "", err
		}
	}
	for _, name := range rhcosStandIns {
		if err := os.Symlink("/usr/local/bin/"+name, filepath.Join(dir, name)); err != nil {
			return "", err
		}
	}
	for _, name := range []string{"oc", "kubectl"} {
		if err := linkOrCopy(kubectl, filepath.Join(dir, name)); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// removeStaleRHCOSBins removes the host bin dirs of earlier processes (a
// day old: no test process runs that long).
func removeStaleRHCOSBins(parent string) {
	old, _ := filepath.Glob(filepath.Join(parent, "rhcos-bin-*"))
	for _, d := range old {
		if fi, err := os.Stat(d); err == nil && time.Since(fi.ModTime()) > 24*time.Hour {
			_ = os.RemoveAll(d)
		}
	}
}

// findSystemTool is the real file behind name in this machine's /usr/bin,
// /usr/sbin, /bin or /sbin (links resolved, so that Debian's alternatives
// need not be bound), or "".
func findSystemTool(name string) string {
	for _, d := range []string{"/usr/bin", "/usr/sbin", "/bin", "/sbin"} {
		p, err := filepath.EvalSymlinks(filepath.Join(d, name))
		if err != nil {
			continue
		}
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// RHCOSTools lists the executables a host has in /usr/bin, sorted.
func RHCOSTools() ([]string, error) {
	dir, err := rhcosBin()
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names, nil
}

var (
	kubectlOnce sync.Once
	kubectlPath string
	kubectlErr  error
)

// kubectlBinary builds the real kubectl of the test module once per
// process (the Go build cache makes it cheap when the e2e tests built it
// already): it is the hosts' oc.
func kubectlBinary() (string, error) {
	kubectlOnce.Do(func() {
		out := filepath.Join(moduleDir(), ".bin", "host-oc")
		cmd := exec.Command("go", "build", "-o", out, "k8s.io/kubernetes/cmd/kubectl")
		cmd.Dir = moduleDir()
		if msg, err := cmd.CombinedOutput(); err != nil {
			kubectlErr = fmt.Errorf("build kubectl: %v\n%s", err, msg)
			return
		}
		kubectlPath = out
	})
	return kubectlPath, kubectlErr
}
