package cmd

import (
	"context"
	"os"
	"reflect"
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/oc-recover/oc-recover/pkg/exitcode"
)

func TestLegacyCommandName(t *testing.T) {
	for caller, want := range map[string]string{
		"/usr/bin/oc":                 "oc plugin recover",
		"/usr/local/bin/kubectl":      "kubectl plugin recover",
		"":                            "kubectl plugin recover",
		"/opt/openshift/bin/oc-3.11":  "oc-3.11 plugin recover",
		"/usr/bin/kubectl-1.11.0-rc1": "kubectl-1.11.0-rc1 plugin recover",
	} {
		if got := LegacyCommandName(caller); got != want {
			t.Errorf("LegacyCommandName(%q) = %q, want %q", caller, got, want)
		}
	}
}

// A legacy caller (kubectl 1.8-1.11, oc 3.x) sets every declared flag and every
// one of its own global flags, defaults included; only what the user changed
// becomes an argument.
func TestLegacyPluginArgs(t *testing.T) {
	streams, _, _, _ := genericiooptions.NewTestIOStreams()
	root := newRootCmd("oc plugin recover", streams)
	environ := []string{
		"PATH=/usr/bin",
		"KUBECTL_PLUGINS_CALLER=/usr/bin/oc",
		"KUBECTL_PLUGINS_CURRENT_NAMESPACE=default",
		// oc 3.x global flags: --config is the kubeconfig, --loglevel is -v;
		// --match-server-version is not this plugin's.
		"KUBECTL_PLUGINS_GLOBAL_FLAG_CONFIG=/home/admin/.kube/prod",
		"KUBECTL_PLUGINS_GLOBAL_FLAG_LOGLEVEL=4",
		"KUBECTL_PLUGINS_GLOBAL_FLAG_MATCH_SERVER_VERSION=false",
		"KUBECTL_PLUGINS_GLOBAL_FLAG_CONTEXT=",
		"KUBECTL_PLUGINS_GLOBAL_FLAG_REQUEST_TIMEOUT=0",
		"KUBECTL_PLUGINS_GLOBAL_FLAG_AS_GROUP=[system:masters,ops]",
		// the descriptor's flags of `backup`, at their defaults except two
		"KUBECTL_PLUGINS_LOCAL_FLAG_OUTPUT_DIR=/srv/backups/today",
		"KUBECTL_PLUGINS_LOCAL_FLAG_YES=true",
		"KUBECTL_PLUGINS_LOCAL_FLAG_DRY_RUN=false",
		"KUBECTL_PLUGINS_LOCAL_FLAG_TIMEOUT=30m0s",
		"KUBECTL_PLUGINS_LOCAL_FLAG_IMAGE=",
	}
	got := LegacyPluginArgs(root, []string{"backup"}, environ)
	want := []string{
		"backup",
		"--as-group=system:masters", "--as-group=ops",
		"--kubeconfig=/home/admin/.kube/prod",
		"--v=4",
		"--output-dir=/srv/backups/today",
		"--yes=true",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("LegacyPluginArgs:\n got %q\nwant %q", got, want)
	}

	// The result parses as the command line the user meant.
	sub, rest, err := root.Find(got)
	if err != nil || sub.Name() != "backup" {
		t.Fatalf("Find(%q) = %v, %v", got, sub, err)
	}
	if err := sub.ParseFlags(rest); err != nil {
		t.Fatalf("ParseFlags(%q): %v", rest, err)
	}
	if v, _ := sub.Flags().GetString("output-dir"); v != "/srv/backups/today" {
		t.Errorf("--output-dir = %q", v)
	}

	t.Run("no flags changed", func(t *testing.T) {
		args := []string{"backup", "verify", "/srv/backups/today"}
		if got := LegacyPluginArgs(root, args, []string{"KUBECTL_PLUGINS_LOCAL_FLAG_YES=false"}); !reflect.DeepEqual(got, args) {
			t.Errorf("got %q, want %q", got, args)
		}
	})
	t.Run("flags go before --", func(t *testing.T) {
		got := LegacyPluginArgs(root, []string{"version", "--", "x"}, []string{"KUBECTL_PLUGINS_LOCAL_FLAG_OUTPUT=json"})
		if want := []string{"version", "--output=json", "--", "x"}; !reflect.DeepEqual(got, want) {
			t.Errorf("got %q, want %q", got, want)
		}
	})
}

// Run the way kubectl 1.11 runs a legacy plugin: positional arguments on the
// command line, flags in the environment.
func TestLegacyInvocation(t *testing.T) {
	savedArgs := os.Args
	t.Cleanup(func() { os.Args = savedArgs })
	os.Args = []string{"./kubectl-recover", "version"}
	t.Setenv(LegacyCallerEnv, "/usr/bin/oc")
	t.Setenv("KUBECTL_PLUGINS_LOCAL_FLAG_OUTPUT", "json")
	t.Setenv("KUBECTL_PLUGINS_GLOBAL_FLAG_V", "0")

	streams, _, out, errOut := genericiooptions.NewTestIOStreams()
	root := NewRootCmd(streams)
	if code := Execute(context.Background(), root); code != exitcode.CodeSuccess {
		t.Fatalf("exit code %d, stderr %q", code, errOut)
	}
	if !strings.HasPrefix(out.String(), "{") {
		t.Errorf("version did not print JSON: %q", out)
	}
	if root.DisplayName() != "oc plugin recover" {
		t.Errorf("display name %q", root.DisplayName())
	}
}

func TestCompletionScripts(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		code, out, errOut := run(t, "/usr/local/bin/oc-recover", "", "completion", shell)
		if code != exitcode.CodeSuccess || errOut != "" {
			t.Fatalf("completion %s: exit code %d, stderr %q", shell, code, errOut)
		}
		if !strings.Contains(out, "oc-recover") || len(out) < 1000 {
			t.Errorf("completion %s does not look like a script for oc-recover:\n%.300s", shell, out)
		}
	}
	code, _, errOut := run(t, "/usr/local/bin/oc-recover", "", "completion", "tcsh")
	if code != exitcode.CodeUsage {
		t.Errorf("completion tcsh: exit code %d, want %d; stderr %q", code, exitcode.CodeUsage, errOut)
	}
}
