package e2e

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/oc-recover/oc-recover/test/box"
	"github.com/oc-recover/oc-recover/test/internal/boxtest"
)

var (
	metav1GetOptions    = metav1.GetOptions{}
	metav1UpdateOptions = metav1.UpdateOptions{}
)

func hexID(id uint64) string { return strconv.FormatUint(id, 16) }

// runOnTerminal runs the plugin on a pseudo-terminal (util-linux's script),
// typing input, as a person at a terminal would: the confirmation prompts
// only appear there.
func runOnTerminal(t *testing.T, b *box.Box, input string, args ...string) boxtest.Result {
	t.Helper()
	quoted := []string{filepath.Join(tools.BinDir, "kubectl-recover")}
	for _, a := range args {
		quoted = append(quoted, "'"+strings.ReplaceAll(a, "'", `'\''`)+"'")
	}
	return tools.Run(t, b, input, "script", "-qec", strings.Join(quoted, " "), "/dev/null")
}
