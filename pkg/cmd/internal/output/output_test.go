package output

import (
	"bytes"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/oc-recover/oc-recover/pkg/exitcode"
)

func TestValidate(t *testing.T) {
	for _, f := range []string{Table, JSON, YAML} {
		if err := Validate(f); err != nil {
			t.Errorf("%s refused: %v", f, err)
		}
	}
	if err := Validate("wide"); exitcode.FromError(err) != exitcode.CodeUsage {
		t.Errorf("-o wide: %v (code %d), want a usage error", err, exitcode.FromError(err))
	}
}

func TestPrint(t *testing.T) {
	v := struct {
		Name  string `json:"name"`
		Count int    `json:"count"`
	}{"a", 1}
	var j, y bytes.Buffer
	if err := Print(&j, JSON, v); err != nil || j.String() != "{\n  \"name\": \"a\",\n  \"count\": 1\n}\n" {
		t.Errorf("json: %q %v", j.String(), err)
	}
	if err := Print(&y, YAML, v); err != nil || y.String() != "count: 1\nname: a\n" {
		t.Errorf("yaml: %q %v", y.String(), err)
	}
}

func TestHumanWriterKeepsStdoutForTheStructuredReport(t *testing.T) {
	var out, errOut bytes.Buffer
	streams := genericiooptions.IOStreams{Out: &out, ErrOut: &errOut}
	for format, want := range map[string]*bytes.Buffer{Table: &out, JSON: &errOut, YAML: &errOut} {
		if got := HumanWriter(format, streams); got != want {
			t.Errorf("-o %s: human text goes to %p, want %p (stdout %p, stderr %p)", format, got, want, &out, &errOut)
		}
	}
}
