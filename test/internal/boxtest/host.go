package boxtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oc-recover/oc-recover/test/box"
)

// DebugImage is the image of `kubectl debug node` pods: the one `oc debug
// node` uses on OpenShift.
const DebugImage = "registry.redhat.io/rhel9/support-tools"

// HostRun runs a shell command on a node's host, as root, the way an
// administrator in `oc debug node` + `chroot /host` would.
func HostRun(t testing.TB, b *box.Box, node, script string) Result {
	t.Helper()
	r, err := HostRunFor(b, node, script, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// HostRunFor runs script on node's host for at most timeout; it may be
// called from any goroutine.
func HostRunFor(b *box.Box, node, script string, timeout time.Duration) (Result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd, err := b.Node(node).Sandbox.Command(ctx, box.HostCommand{Argv: []string{"sh", "-c", script}})
	if err != nil {
		return Result{}, err
	}
	return Capture(cmd)
}

// WaitForHost runs script on node until it prints want: host state (a
// unit, a moved manifest) follows a command a moment later.
func WaitForHost(t testing.TB, b *box.Box, node, script, want string) {
	t.Helper()
	err := box.WaitFor(context.Background(), 45*time.Second, fmt.Sprintf("%q on %s to print %q", script, node, want), func(context.Context) (bool, string, error) {
		r := HostRun(t, b, node, script)
		return r.Stdout == want, r.String(), nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// ProcessesUnder lists the processes chrooted below dir, or about to be
// (their command line names it): every host process of a box, so a test
// can tell what a host command left running.
func ProcessesUnder(dir string) []string {
	var found []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		root, _ := os.Readlink(filepath.Join("/proc", e.Name(), "root"))
		if strings.HasPrefix(root, dir+"/") || strings.Contains(string(cmdline), dir+"/") {
			found = append(found, e.Name()+": "+strings.ReplaceAll(string(cmdline), "\x00", " "))
		}
	}
	return found
}
