package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// kubectl finds the plugin on PATH, and the plugin names itself after how
// it was invoked.
func TestKubectlPluginListFindsThePlugin(t *testing.T) {
	r := tools.Run(t, shared, "", "kubectl", "plugin", "list")
	if r.Code != 0 || !strings.Contains(r.Stdout, filepath.Join(tools.BinDir, "kubectl-recover")) {
		t.Fatalf("kubectl plugin list does not show kubectl-recover: %s", r)
	}
	r = tools.Run(t, shared, "", "kubectl", "recover", "--help")
	if r.Code != 0 || !strings.Contains(r.Stdout, "kubectl recover") {
		t.Fatalf("kubectl recover --help: %s", r)
	}
	r = tools.Run(t, shared, "", "kubectl", "recover", "version")
	if r.Code != 0 || !strings.Contains(r.Stdout, "Version:    "+e2eVersion+"\n") {
		t.Fatalf("kubectl recover version: %s", r)
	}
	r = tools.Run(t, shared, "", "oc-recover", "--help")
	if r.Code != 0 || !strings.Contains(r.Stdout, "oc recover") {
		t.Fatalf("oc-recover --help does not say oc recover: %s", r)
	}
}

// Shell completion after `kubectl recover <TAB>`: kubectl asks the executable
// kubectl_complete-recover on PATH, written as the README says.
func TestKubectlCompletesThePlugin(t *testing.T) {
	dir := t.TempDir()
	script := "#!/bin/sh\nexec kubectl-recover __complete \"$@\"\n"
	if err := os.WriteFile(filepath.Join(dir, "kubectl_complete-recover"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	env := toolEnv(t, []string{dir, tools.BinDir, "/usr/bin", "/bin"}, "KUBECONFIG="+shared.Kubeconfig)
	r := runTool(t, env, filepath.Join(tools.BinDir, "kubectl"), "__complete", "recover", "")
	for _, want := range []string{"backup\t", "member\t", "completion\t"} {
		if r.Code != 0 || !strings.Contains(r.Stdout, want) {
			t.Errorf("kubectl __complete recover '' lacks %q: %s", want, r)
		}
	}
	r = runTool(t, env, filepath.Join(tools.BinDir, "kubectl"), "__complete", "recover", "backup", "--keep-")
	if r.Code != 0 || !strings.Contains(r.Stdout, "--keep-on-node") {
		t.Errorf("kubectl __complete recover backup --keep-: %s", r)
	}
	r = tools.Run(t, shared, "", "kubectl", "recover", "completion", "bash")
	if r.Code != 0 || !strings.Contains(r.Stdout, "__start_kubectl-recover") {
		t.Errorf("kubectl recover completion bash: %.500s", r)
	}
}
