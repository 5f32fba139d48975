package cmd

import "testing"

func TestCommandName(t *testing.T) {
	tests := []struct {
		name         string
		argv0        string
		shellCommand string // the "_" environment variable
		want         string
	}{
		{"oc runs oc-recover", "/usr/local/bin/oc-recover", "/usr/bin/oc", "oc recover"},
		{"kubectl runs kubectl-recover", "/usr/local/bin/kubectl-recover", "/usr/local/bin/kubectl", "kubectl recover"},
		{"oc runs kubectl-recover", "/usr/local/bin/kubectl-recover", "/usr/bin/oc", "oc recover"},
		{"kubectl runs the binary installed as both names", "/opt/bin/kubectl-recover", "kubectl", "kubectl recover"},
		{"user runs kubectl-recover directly", "/usr/local/bin/kubectl-recover", "/usr/local/bin/kubectl-recover", "kubectl recover"},
		{"user runs oc-recover directly", "./bin/oc-recover", "./bin/oc-recover", "oc recover"},
		{"no shell set _, kubectl-recover", "kubectl-recover", "", "kubectl recover"},
		{"no shell set _, oc-recover", "oc-recover", "", "oc recover"},
		{"_ left over from an unrelated command", "/usr/local/bin/kubectl-recover", "/usr/bin/env", "kubectl recover"},
		{"_ names a tool that merely starts with oc", "/usr/local/bin/kubectl-recover", "/usr/bin/ocm", "kubectl recover"},
		{"windows kubectl", `kubectl-recover.exe`, `kubectl.exe`, "kubectl recover"},
		{"go run or test binary falls back to oc", "/tmp/go-build123/b001/exe/main", "/usr/local/go/bin/go", "oc recover"},
		{"nothing known falls back to oc", "", "", "oc recover"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := CommandName(tt.argv0, tt.shellCommand); got != tt.want {
				t.Errorf("CommandName(%q, %q) = %q, want %q", tt.argv0, tt.shellCommand, got, tt.want)
			}
		})
	}
}
