package version

import (
	"github.com/oc-recover/oc-recover/pkg/cmd/internal/output"

	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/yaml"

	"github.com/oc-recover/oc-recover/pkg/exitcode"
	"github.com/oc-recover/oc-recover/pkg/version"
)

var testInfo = version.Info{
	GitVersion: "v4.18.1-7-gdeadbee-dirty",
	GitCommit:  "deadbeefdeadbeefdeadbeefdeadbeefdeadbeef",
	BuildDate:  "2025-11-21T22:27:00Z",
	GoVersion:  "go1.24.9",
	Compiler:   "gc",
	Platform:   "linux/arm64",
}

func TestPrintVersionTable(t *testing.T) {
	var out bytes.Buffer
	if err := printVersion(&out, testInfo, output.Table); err != nil {
		t.Fatal(err)
	}
	want := "Version:    v4.18.1-7-gdeadbee-dirty\n" +
		"Git commit: deadbeefdeadbeefdeadbeefdeadbeefdeadbeef\n" +
		"Build date: 2025-11-21T22:27:00Z\n" +
		"Go version: go1.24.9\n" +
		"Platform:   linux/arm64\n"
	if out.String() != want {
		t.Errorf("table output:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestPrintVersionStructured(t *testing.T) {
	for _, format := range []struct {
		name      string
		unmarshal func([]byte, any) error
	}{
		{output.JSON, json.Unmarshal},
		{output.YAML, func(data []byte, v any) error { return yaml.UnmarshalStrict(data, v) }},
	} {
		t.Run(format.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := printVersion(&out, testInfo, format.name); err != nil {
				t.Fatal(err)
			}
			var got version.Info
			if err := format.unmarshal(out.Bytes(), &got); err != nil {
				t.Fatalf("output does not parse as %s: %v\n%s", format.name, err, out.String())
			}
			if got != testInfo {
				t.Errorf("round trip = %+v, want %+v", got, testInfo)
			}
		})
	}
}

func TestPrintVersionJSONKeys(t *testing.T) {
	var out bytes.Buffer
	if err := printVersion(&out, testInfo, output.JSON); err != nil {
		t.Fatal(err)
	}
	var fields map[string]string
	if err := json.Unmarshal(out.Bytes(), &fields); err != nil {
		t.Fatal(err)
	}
	// Scripts read these keys; renaming one is a breaking change.
	for key, want := range map[string]string{
		"gitVersion": testInfo.GitVersion,
		"gitCommit":  testInfo.GitCommit,
		"buildDate":  testInfo.BuildDate,
		"goVersion":  testInfo.GoVersion,
		"platform":   testInfo.Platform,
	} {
		if fields[key] != want {
			t.Errorf("%s = %q, want %q", key, fields[key], want)
		}
	}
}

func TestVersionCommand(t *testing.T) {
	t.Run("json output of the running binary", func(t *testing.T) {
		streams, _, out, _ := genericiooptions.NewTestIOStreams()
		cmd := NewCmdVersion(streams)
		cmd.SetArgs([]string{"-o", "json"})
		if err := cmd.Execute(); err != nil {
			t.Fatal(err)
		}
		var got version.Info
		if err := json.Unmarshal(out.Bytes(), &got); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, out.String())
		}
		if got != version.Get() {
			t.Errorf("printed %+v, want %+v", got, version.Get())
		}
	})

	t.Run("unknown output format is a usage error", func(t *testing.T) {
		streams, _, out, _ := genericiooptions.NewTestIOStreams()
		cmd := NewCmdVersion(streams)
		cmd.SetArgs([]string{"-o", "xml"})
		cmd.SilenceErrors, cmd.SilenceUsage = true, true
		err := cmd.Execute()
		if code := exitcode.FromError(err); code != exitcode.CodeUsage {
			t.Errorf("exit code %d (err %v), want %d", code, err, exitcode.CodeUsage)
		}
		if !strings.Contains(err.Error(), `"xml"`) {
			t.Errorf("error %q does not name the bad format", err)
		}
		if out.Len() != 0 {
			t.Errorf("printed %q despite the error", out.String())
		}
	})
}
