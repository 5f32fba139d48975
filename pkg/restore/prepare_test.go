package restore

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The runner is valid bash, and plan.env is what it sources: names and
// addresses quoted, every node listed in a stable order.
func TestRunnerScriptAndPlanEnv(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "run.sh")
	if err := os.WriteFile(script, runnerScript, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("bash", "-n", script).CombinedOutput(); err != nil {
		t.Fatalf("bash -n run.sh: %v\n%s", err, out)
	}
	all := []Host{{Name: "master-2", IP: "10.0.0.7"}, {Name: "master-0", IP: "10.0.0.5"}}
	env := filepath.Join(dir, "plan.env")
	if err := os.WriteFile(env, []byte(planEnv("prepared-x", Legacy, all[1], all, "within", 0)), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("bash", "-c", `set -u; . "$1"; echo "$RESTORE_ID|$PROFILE|$THIS_NODE|$THIS_IP|$NODES|$DATA_MOVE|$PEER_DEADLINE"`, "sh", env).CombinedOutput()
	if err != nil {
		t.Fatalf("source plan.env: %v\n%s", err, out)
	}
	if got, want := strings.TrimSpace(string(out)), "prepared-x|legacy|master-0|10.0.0.5|master-0=10.0.0.5 master-2=10.0.0.7|within|2700"; got != want {
		t.Errorf("plan.env gives %q, want %q", got, want)
	}
}

// The console commands of the day: the peers first, naming the recovery
// host, then the recovery host.
func TestPreparedCommandsPutPeersFirst(t *testing.T) {
	p := &Prepared{Hosts: []Host{{Name: "master-0"}, {Name: "master-1"}, {Name: "master-2"}}}
	var got []string
	for _, c := range p.Commands("master-1") {
		got = append(got, c.Node+": "+c.Command)
	}
	want := []string{
		"master-0: bash " + PreparedDir + "/run.sh peer master-1",
		"master-2: bash " + PreparedDir + "/run.sh peer master-1",
		"master-1: bash " + PreparedDir + "/run.sh recovery",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("commands:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
