package cmd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/oc-recover/oc-recover/pkg/exitcode"
	"github.com/oc-recover/oc-recover/pkg/version"
)

// run executes the real root command, built by NewRootCmd as main does, with
// the given invocation, and returns exit code, stdout and stderr.
func run(t *testing.T, argv0, shellCommand string, args ...string) (int, string, string) {
	t.Helper()
	savedArgs := os.Args
	t.Cleanup(func() { os.Args = savedArgs })
	os.Args = append([]string{argv0}, args...)
	t.Setenv("_", shellCommand)

	streams, _, out, errOut := genericiooptions.NewTestIOStreams()
	root := NewRootCmd(streams)
	root.SetArgs(args)
	code := Execute(context.Background(), root)
	return code, out.String(), errOut.String()
}

func TestHelpNamesItselfAfterTheInvocation(t *testing.T) {
	tests := []struct {
		name, argv0, shellCommand string
		want, notWant             string
	}{
		{"oc plugin", "/usr/local/bin/oc-recover", "/usr/bin/oc", "oc recover", "kubectl recover"},
		{"kubectl plugin", "/usr/local/bin/kubectl-recover", "/usr/bin/kubectl", "kubectl recover", "oc recover"},
		{"oc running the kubectl-recover binary", "/usr/local/bin/kubectl-recover", "/usr/bin/oc", "oc recover", "kubectl recover"},
		{"kubectl-recover run directly", "./bin/kubectl-recover", "./bin/kubectl-recover", "kubectl recover", "oc recover"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, args := range [][]string{{"--help"}, {"version", "--help"}, {}} {
				code, out, errOut := run(t, tt.argv0, tt.shellCommand, args...)
				if code != exitcode.CodeSuccess || errOut != "" {
					t.Fatalf("%v: exit code %d, stderr %q", args, code, errOut)
				}
				if strings.Contains(out, tt.notWant) || strings.Contains(out, CommandNamePlaceholder) {
					t.Errorf("%v: help mentions %q or the placeholder:\n%s", args, tt.notWant, out)
				}
				var wantLines []string
				if len(args) > 0 && args[0] == "version" {
					wantLines = []string{
						"Usage:\n  " + tt.want + " version [flags]",
						"\n  " + tt.want + " version -o json\n", // example
					}
				} else {
					wantLines = []string{
						"\n  " + tt.want + " [command]\n", // usage line
						"\n  " + tt.want + " version\n",   // example
						"Use \"" + tt.want + " [command] --help\"",
					}
				}
				for _, want := range wantLines {
					if !strings.Contains(out, want) {
						t.Errorf("%v: help lacks %q:\n%s", args, want, out)
					}
				}
			}
		})
	}
}

func TestGlobalFlags(t *testing.T) {
	streams, _, _, _ := genericiooptions.NewTestIOStreams()
	root := newRootCmd("oc recover", streams)
	for _, name := range []string{
		// a sample of genericclioptions.ConfigFlags
		"kubeconfig", "context", "cluster", "user", "server", "token", "as", "as-group",
		"insecure-skip-tls-verify", "certificate-authority", "request-timeout", "namespace",
		// SPEC "Global flags"
		"yes", "dry-run", "timeout", "image", "v",
	} {
		if root.PersistentFlags().Lookup(name) == nil {
			t.Errorf("persistent flag --%s missing", name)
		}
	}
	if v := root.PersistentFlags().Lookup("v"); v == nil || v.Shorthand != "v" {
		t.Error("klog verbosity should be reachable as -v")
	}
	if root.PersistentFlags().Lookup("logtostderr") != nil {
		t.Error("only -v of the klog flags should be exposed")
	}
}

func TestExitCodes(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStderr []string
	}{
		{"unknown flag", []string{"version", "--bogus"}, exitcode.CodeUsage,
			[]string{"error: unknown flag: --bogus\n", "See 'oc recover version -h' for help and examples.\n"}},
		{"unknown global flag", []string{"--bogus"}, exitcode.CodeUsage, []string{"error: unknown flag: --bogus\n"}},
		{"bad flag value", []string{"--timeout=soon", "version"}, exitcode.CodeUsage, []string{`invalid argument "soon"`}},
		{"negative timeout", []string{"--timeout=-5m", "version"}, exitcode.CodeUsage, []string{"--timeout must not be negative"}},
		{"extra argument", []string{"version", "extra"}, exitcode.CodeUsage, []string{`error: unknown command "extra" for "oc recover version"`}},
		{"unknown subcommand", []string{"verison"}, exitcode.CodeUsage,
			[]string{`error: unknown command "verison" for "oc recover"`, "Did you mean this?\n\tversion\n", "See 'oc recover -h'"}},
		{"bad output format", []string{"version", "-o", "xml"}, exitcode.CodeUsage, []string{`"xml"`}},
		{"success", []string{"version"}, exitcode.CodeSuccess, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := run(t, "oc-recover", "", tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tt.wantCode, errOut)
			}
			for _, want := range tt.wantStderr {
				if !strings.Contains(errOut, want) {
					t.Errorf("stderr lacks %q:\n%s", want, errOut)
				}
			}
			if tt.wantStderr == nil && errOut != "" {
				t.Errorf("unexpected stderr:\n%s", errOut)
			}
			if n := strings.Count(errOut, "error: "); n > 1 {
				t.Errorf("error printed %d times:\n%s", n, errOut)
			}
		})
	}
}

func TestVersionJSONThroughRoot(t *testing.T) {
	code, out, errOut := run(t, "kubectl-recover", "kubectl", "version", "-o", "json")
	if code != exitcode.CodeSuccess {
		t.Fatalf("exit code %d, stderr %q", code, errOut)
	}
	var got version.Info
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("version -o json is not JSON: %v\n%s", err, out)
	}
	if got != version.Get() {
		t.Errorf("printed %+v, want %+v", got, version.Get())
	}
}

// newTestTree builds a small tree shaped like the real one will be (a group
// with subcommands) whose leaves return the given error, prepared like the root.
func newTestTree(leafErr error) (*cobra.Command, *bytes.Buffer, *bytes.Buffer) {
	root := &cobra.Command{Use: "oc-recover", SilenceErrors: true, SilenceUsage: true,
		Annotations: map[string]string{cobra.CommandDisplayNameAnnotation: "oc recover"}}
	member := &cobra.Command{Use: "member", Short: "Manage etcd members",
		Example: "  {{root}} member status"}
	status := &cobra.Command{Use: "status", Short: "Show members", Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error { return leafErr }}
	member.AddCommand(status)
	root.AddCommand(member)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return exitcode.Usage(err) })
	prepareCommandTree(root, "oc recover")

	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	return root, &out, &errOut
}

func TestExecuteReportsCommandErrors(t *testing.T) {
	tests := []struct {
		name       string
		leafErr    error
		wantCode   int
		wantStderr string
	}{
		{"success", nil, exitcode.CodeSuccess, ""},
		{"plain failure", errors.New("etcd unreachable"), exitcode.CodeFailure, "error: etcd unreachable\n"},
		{"needs attention", exitcode.NeedsAttention(errors.New("2 of 3 members healthy")), exitcode.CodeNeedsAttention,
			"error: 2 of 3 members healthy\n"},
		{"needs attention, already reported", exitcode.NeedsAttention(nil), exitcode.CodeNeedsAttention, ""},
		{"message with its own prefix", errors.New("error: quorum lost"), exitcode.CodeFailure, "error: quorum lost\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root, _, errOut := newTestTree(tt.leafErr)
			root.SetArgs([]string{"member", "status"})
			if code := Execute(context.Background(), root); code != tt.wantCode {
				t.Errorf("exit code %d, want %d", code, tt.wantCode)
			}
			if errOut.String() != tt.wantStderr {
				t.Errorf("stderr %q, want %q", errOut.String(), tt.wantStderr)
			}
		})
	}
}

func TestCommandGroups(t *testing.T) {
	t.Run("bare group prints its help", func(t *testing.T) {
		root, out, errOut := newTestTree(nil)
		root.SetArgs([]string{"member"})
		if code := Execute(context.Background(), root); code != exitcode.CodeSuccess {
			t.Errorf("exit code %d, stderr %q", code, errOut.String())
		}
		if !strings.Contains(out.String(), "oc recover member [command]") {
			t.Errorf("help of the group not printed:\n%s", out.String())
		}
		if !strings.Contains(out.String(), "  oc recover member status") {
			t.Errorf("example placeholder not substituted:\n%s", out.String())
		}
	})
	t.Run("unknown subcommand of a group is a usage error", func(t *testing.T) {
		root, out, errOut := newTestTree(nil)
		root.SetArgs([]string{"member", "stauts"})
		if code := Execute(context.Background(), root); code != exitcode.CodeUsage {
			t.Errorf("exit code %d, want %d", code, exitcode.CodeUsage)
		}
		if want := "error: unknown command \"stauts\" for \"oc recover member\"\n\nDid you mean this?\n\tstatus\n" +
			"See 'oc recover member -h' for help and examples.\n"; errOut.String() != want {
			t.Errorf("stderr:\n%s\nwant:\n%s", errOut.String(), want)
		}
		if out.Len() != 0 {
			t.Errorf("printed help on a usage error:\n%s", out.String())
		}
	})
}

// Cobra reports violations of MarkFlagRequired and flag groups as plain errors
// (exit code 1) before any of our code runs, so commands must not use them;
// see the package documentation.
func TestNoCobraValidatedFlagConstraints(t *testing.T) {
	forbidden := []string{
		cobra.BashCompOneRequiredFlag,
		"cobra_annotation_required_if_others_set",
		"cobra_annotation_one_required",
		"cobra_annotation_mutually_exclusive",
	}
	streams, _, _, _ := genericiooptions.NewTestIOStreams()
	var visit func(*cobra.Command)
	visit = func(c *cobra.Command) {
		for _, flags := range []*pflag.FlagSet{c.LocalFlags(), c.InheritedFlags()} {
			flags.VisitAll(func(f *pflag.Flag) {
				for _, key := range forbidden {
					if _, ok := f.Annotations[key]; ok {
						t.Errorf("%s --%s uses %s; check it in Validate and return exitcode.Usage", c.CommandPath(), f.Name, key)
					}
				}
			})
		}
		for _, child := range c.Commands() {
			visit(child)
		}
	}
	visit(newRootCmd("oc recover", streams))
}

// A mistyped command is a usage error with cobra's suggestion, whether or not
// --help follows it; the real tree, named as the user invoked it.
func TestUnknownCommands(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantStderr string
	}{
		{"top level", []string{"frobnicate"},
			"error: unknown command \"frobnicate\" for \"oc recover\"\n" +
				"See 'oc recover -h' for help and examples.\n"},
		{"top level with a suggestion", []string{"bakup"},
			"error: unknown command \"bakup\" for \"oc recover\"\n\nDid you mean this?\n\tbackup\n" +
				"See 'oc recover -h' for help and examples.\n"},
		{"of backup, which runs by itself too", []string{"backup", "lst"},
			"error: unknown command \"lst\" for \"oc recover backup\"\n\nDid you mean this?\n\tlist\n" +
				"See 'oc recover backup -h' for help and examples.\n"},
		{"of member", []string{"member", "stauts"},
			"error: unknown command \"stauts\" for \"oc recover member\"\n\nDid you mean this?\n\tstatus\n" +
				"See 'oc recover member -h' for help and examples.\n"},
		{"after a global flag and its value", []string{"--context", "admin", "member", "stauts"},
			"error: unknown command \"stauts\" for \"oc recover member\"\n\nDid you mean this?\n\tstatus\n" +
				"See 'oc recover member -h' for help and examples.\n"},
	}
	for _, tt := range tests {
		for _, help := range [][]string{nil, {"--help"}, {"-h"}} {
			args := append(append([]string(nil), tt.args...), help...)
			t.Run(tt.name+" "+strings.Join(help, ""), func(t *testing.T) {
				code, out, errOut := run(t, "oc-recover", "", args...)
				if code != exitcode.CodeUsage {
					t.Errorf("%v: exit code %d, want %d", args, code, exitcode.CodeUsage)
				}
				if errOut != tt.wantStderr {
					t.Errorf("%v: stderr:\n%s\nwant:\n%s", args, errOut, tt.wantStderr)
				}
				if out != "" {
					t.Errorf("%v: printed on stdout:\n%s", args, out)
				}
			})
		}
	}

	t.Run("help of an unknown command", func(t *testing.T) {
		for args, want := range map[string]string{
			"help frobnicate": "error: unknown command \"frobnicate\" for \"oc recover\"\n" +
				"See 'oc recover -h' for help and examples.\n",
			"help backup lst": "error: unknown command \"lst\" for \"oc recover backup\"\n\nDid you mean this?\n\tlist\n" +
				"See 'oc recover backup -h' for help and examples.\n",
		} {
			code, out, errOut := run(t, "oc-recover", "", strings.Fields(args)...)
			if code != exitcode.CodeUsage || errOut != want || out != "" {
				t.Errorf("%s: exit code %d, stdout %q, stderr:\n%s\nwant %d and:\n%s", args, code, out, errOut, exitcode.CodeUsage, want)
			}
		}
	})

	t.Run("named as invoked", func(t *testing.T) {
		code, _, errOut := run(t, "/usr/local/bin/kubectl-recover", "/usr/bin/kubectl", "member", "stauts", "--help")
		if want := "error: unknown command \"stauts\" for \"kubectl recover member\"\n\nDid you mean this?\n\tstatus\n" +
			"See 'kubectl recover member -h' for help and examples.\n"; code != exitcode.CodeUsage || errOut != want {
			t.Errorf("exit code %d, stderr:\n%s\nwant %d and:\n%s", code, errOut, exitcode.CodeUsage, want)
		}
	})
}

// --help on a command that exists, or a bare group, still prints its help and
// exits 0.
func TestHelpOfKnownCommands(t *testing.T) {
	for _, args := range [][]string{
		{"--help"}, {"backup", "--help"}, {"backup", "list", "--help"}, {"member", "-h"},
		{"member", "status", "--help"}, {"--context", "admin", "member", "status", "-h"},
		{"member"}, {"help"}, {"help", "member"}, {"help", "backup", "list"},
	} {
		code, out, errOut := run(t, "oc-recover", "", args...)
		if code != exitcode.CodeSuccess || errOut != "" {
			t.Errorf("%v: exit code %d, stderr %q", args, code, errOut)
		}
		if !strings.Contains(out, "Usage:\n  oc recover ") {
			t.Errorf("%v: no help printed:\n%s", args, out)
		}
	}
}

// Under a legacy plugin caller (oc 3.x `oc plugin recover`), which passes the
// user's flags through the environment, a mistyped command is the same usage
// error, named as the caller names the plugin.
func TestUnknownCommandUnderLegacyCaller(t *testing.T) {
	t.Setenv(LegacyCallerEnv, "/usr/bin/oc")
	t.Setenv("KUBECTL_PLUGINS_GLOBAL_FLAG_CONTEXT", "admin")
	savedArgs := os.Args
	t.Cleanup(func() { os.Args = savedArgs })
	// the descriptor's command words and the user's positional arguments
	os.Args = []string{"/usr/local/bin/oc-recover", "member", "stauts"}
	streams, _, _, stderr := genericiooptions.NewTestIOStreams()
	code := Execute(context.Background(), NewRootCmd(streams))
	errOut := stderr.String()
	if want := "error: unknown command \"stauts\" for \"oc plugin recover member\"\n\nDid you mean this?\n\tstatus\n" +
		"See 'oc plugin recover member -h' for help and examples.\n"; code != exitcode.CodeUsage || errOut != want {
		t.Errorf("exit code %d, stderr:\n%s\nwant %d and:\n%s", code, errOut, exitcode.CodeUsage, want)
	}
}
