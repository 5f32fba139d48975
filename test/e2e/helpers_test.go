package e2e

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/oc-recover/oc-recover/test/box"
)

var (
	metav1GetOptions    = metav1.GetOptions{}
	metav1UpdateOptions = metav1.UpdateOptions{}
)

func hexID(id uint64) string { return strconv.FormatUint(id, 16) }

// stopMachineAndWait stops node's machine and waits until the etcd operator
// reports its member unhealthy.
func stopMachineAndWait(t *testing.T, b *box.Box, node string) {
	t.Helper()
	ctx := context.Background()
	if err := b.StopMachine(ctx, node); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitForEtcdMembersAvailable(ctx, "2 of 3 members are available, "+node+" is unhealthy"); err != nil {
		t.Fatal(err)
	}
}

// runOnTerminal runs the plugin on a pseudo-terminal (util-linux's script),
// typing input, as a person at a terminal would: the confirmation prompts
// only appear there.
func runOnTerminal(t *testing.T, b *box.Box, input string, args ...string) result {
	t.Helper()
	quoted := []string{filepath.Join(binDir, "kubectl-recover")}
	for _, a := range args {
		quoted = append(quoted, "'"+strings.ReplaceAll(a, "'", `'\''`)+"'")
	}
	return run(t, b, input, "script", "-qec", strings.Join(quoted, " "), "/dev/null")
}
