package cmd

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/oc-recover/oc-recover/pkg/exitcode"
)

// Every command refuses a bad argument or flag as a usage error (exit 2)
// before it reads a kubeconfig (options.Command): here the kubeconfig does
// not exist, and each refusal is still the command's own message.
func TestUsageErrorsComeBeforeTheKubeconfig(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-kubeconfig")
	notADir := filepath.Join(t.TempDir(), "absent")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"backup", "--keep", "-1"}, "--keep must be a positive number"},
		{[]string{"backup", "--silence-timeout", "0s"}, "--silence-timeout must be at least 1s"},
		{[]string{"backup", "list", notADir}, notADir + " is not a directory"},
		{[]string{"backup", "list", ".", "-o", "xml"}, `"xml"`},
		{[]string{"backup", "verify", notADir}, notADir + " is not a directory"},
		{[]string{"certs", "-o", "xml"}, `"xml"`},
		{[]string{"certs", "--restart-by", "later"}, `--restart-by "later" is neither an RFC 3339 time`},
		{[]string{"certs", "recover", "-o", "xml"}, `"xml"`},
		{[]string{"certs", "recover", "master-0"}, `unknown command "master-0"`},
		{[]string{"certs", "recover", "--interval", "0s"}, "--interval must be positive"},
		{[]string{"certs", "recover", "--timeout", "-1s"}, "--timeout must not be negative"},
		{[]string{"certs", "recover", "--restart-by", "60d"}, "unknown flag: --restart-by"},
		{[]string{"health", "-o", "xml"}, `"xml"`},
		{[]string{"health", "--only", "etcd,bogus"}, `--only: "bogus" is no area or check`},
		{[]string{"health", "--skip", "etcd.quotas"}, `--skip: "etcd.quotas" is no area or check`},
		{[]string{"health", "--restart-by", "soon"}, `--restart-by "soon" is neither an RFC 3339 time`},
		{[]string{"health", "--max-backup-age", "-1h"}, "--max-backup-age must be positive"},
		{[]string{"health", "extra"}, `unknown command "extra"`},
		{[]string{"member", "replace"}, "name the control-plane node whose member to replace"},
		{[]string{"member", "replace", "master-0", "--member-id", "zz-top"}, `--member-id "zz-top" is not a hexadecimal etcd member ID`},
		{[]string{"member", "replace", "master-0", "--max-backup-age", "0s"}, "--max-backup-age must be positive"},
		{[]string{"member", "status", "-o", "xml"}, `"xml"`},
		{[]string{"redeploy"}, "name one operand"},
		{[]string{"redeploy", "etcdd"}, `unknown operand "etcdd"`},
		{[]string{"shutdown", "--restart-by", "whenever"}, `--restart-by "whenever" is neither an RFC 3339 time`},
		{[]string{"shutdown", "--pod-start-timeout", "0s"}, "--pod-start-timeout must be positive"},
		{[]string{"startup", "-o", "xml"}, `"xml"`},
		{[]string{"csr", "approve", "--new-node", "Not_A_Node"}, `--new-node "Not_A_Node" is not a node name`},
	} {
		args := append([]string{"--kubeconfig", missing}, tc.args...)
		code, _, errOut := run(t, "oc-recover", "", args...)
		if code != exitcode.CodeUsage || !strings.Contains(errOut, tc.want) || strings.Contains(errOut, missing) {
			t.Errorf("%v: exit %d, stderr:\n%s\nwant exit %d saying %q, before the kubeconfig is read", tc.args, code, errOut, exitcode.CodeUsage, tc.want)
		}
	}
	// With good flags, the kubeconfig is read next: a missing one is a usage
	// error that names it.
	code, _, errOut := run(t, "oc-recover", "", "--kubeconfig", missing, "member", "status")
	if code != exitcode.CodeUsage || !strings.Contains(errOut, missing) {
		t.Errorf("member status with a missing kubeconfig: exit %d, stderr:\n%s\nwant exit %d naming %s", code, errOut, exitcode.CodeUsage, missing)
	}
}
