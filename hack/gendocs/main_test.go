package main

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/yaml"

	"github.com/oc-recover/oc-recover/pkg/cmd"
)

// repoRoot is where the checked-in plugins.yaml and docs/ are.
const repoRoot = "../.."

// firstDifference describes where got and want part, for a short failure.
func firstDifference(got, want []byte) string {
	g, w := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return "line " + strconv.Itoa(i+1) + ":\n  generated:  " + gl + "\n  checked in: " + wl
		}
	}
	return "no line differs"
}

func TestPluginsYAMLIsCurrent(t *testing.T) {
	got, err := pluginDescriptor()
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(repoRoot, "plugins.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("plugins.yaml is out of date with the commands: run `make plugins.yaml` and commit it.\n%s", firstDifference(got, want))
	}
}

func TestDocsAreCurrent(t *testing.T) {
	files, err := docs()
	if err != nil {
		t.Fatal(err)
	}
	checkedIn, err := filepath.Glob(filepath.Join(repoRoot, "docs", docsPrefix+"*.md"))
	if err != nil {
		t.Fatal(err)
	}
	const fix = "run `make docs` and commit docs/"
	for _, path := range checkedIn {
		name := filepath.Base(path)
		if _, ok := files[name]; !ok {
			t.Errorf("docs/%s documents a command that no longer exists: %s", name, fix)
		}
	}
	var names []string
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		want, err := os.ReadFile(filepath.Join(repoRoot, "docs", name))
		if os.IsNotExist(err) {
			t.Errorf("docs/%s is missing: %s", name, fix)
			continue
		} else if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(files[name], want) {
			t.Errorf("docs/%s is out of date: %s\n%s", name, fix, firstDifference(files[name], want))
		}
	}
	if _, ok := files["oc_recover_completion_bash.md"]; !ok {
		t.Error("the reference lacks `completion bash`")
	}
}

// The generated files do not depend on the machine or the user.
func TestGenerationIsDeterministic(t *testing.T) {
	first, err := pluginDescriptor()
	if err != nil {
		t.Fatal(err)
	}
	firstDocs, err := docs()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOME", "/nonexistent/other-user")
	t.Setenv("KUBECACHEDIR", "/var/cache/other")
	second, err := pluginDescriptor()
	if err != nil {
		t.Fatal(err)
	}
	secondDocs, err := docs()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, second) {
		t.Errorf("plugins.yaml depends on the environment:\n%s", firstDifference(first, second))
	}
	for name, data := range firstDocs {
		if !bytes.Equal(data, secondDocs[name]) {
			t.Errorf("docs/%s depends on the environment:\n%s", name, firstDifference(data, secondDocs[name]))
		}
		for _, s := range []string{"/nonexistent", "/var/cache/other", "Auto generated"} {
			if bytes.Contains(data, []byte(s)) {
				t.Errorf("docs/%s contains %q", name, s)
			}
		}
	}
}

// legacyDescriptor is how kubectl 1.8-1.11 reads plugin.yaml: ghodss/yaml,
// i.e. YAML to JSON, then JSON tags.
type legacyDescriptor struct {
	Name      string `json:"name"`
	ShortDesc string `json:"shortDesc"`
	LongDesc  string `json:"longDesc,omitempty"`
	Example   string `json:"example,omitempty"`
	Command   string `json:"command"`
	Flags     []struct {
		Name      string `json:"name"`
		Shorthand string `json:"shorthand,omitempty"`
		Desc      string `json:"desc"`
		DefValue  string `json:"defValue,omitempty"`
	} `json:"flags,omitempty"`
	Tree []legacyDescriptor `json:"tree,omitempty"`
}

// The checked-in descriptor passes the legacy callers' validation
// (pkg/kubectl/plugins Plugin.Validate), and every command and flag it
// declares is one the binary has, so what the caller passes is understood.
func TestPluginsYAMLIsValidForLegacyCallers(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot, "plugins.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var root legacyDescriptor
	if err := yaml.UnmarshalStrict(data, &root); err != nil {
		t.Fatalf("plugins.yaml: %v", err)
	}
	if root.Name != "recover" {
		t.Errorf("plugin name %q, want recover", root.Name)
	}
	streams, _, _, _ := genericiooptions.NewTestIOStreams()
	tree := cmd.NewRootCmdNamed("oc plugin recover", streams)

	seen := 0
	var check func(p legacyDescriptor, path string)
	check = func(p legacyDescriptor, path string) {
		seen++
		if p.Name == "" || p.ShortDesc == "" || p.Command == "" && len(p.Tree) == 0 {
			t.Errorf("%s: incomplete plugin (name, shortDesc, command or tree)", path)
		}
		if strings.Contains(p.Name, " ") {
			t.Errorf("%s: plugin name has a space", path)
		}
		words := strings.Fields(p.Command)
		if len(words) == 0 || words[0] != legacyBinary {
			t.Fatalf("%s: command %q does not run %s", path, p.Command, legacyBinary)
		}
		target, rest, err := tree.Find(words[1:])
		if err != nil || len(rest) > 0 || target.Name() != p.Name && target != tree {
			t.Errorf("%s: command %q is not a command of the binary (%v)", path, p.Command, err)
			return
		}
		names := map[string]bool{}
		for _, f := range p.Flags {
			if f.Name == "" || f.Desc == "" || strings.Contains(f.Name, " ") {
				t.Errorf("%s: incomplete or badly named flag %+v", path, f)
			}
			if f.Shorthand != "" && (len(f.Shorthand) != 1 || !unicode.IsLetter(rune(f.Shorthand[0])) || callerShorthands[f.Shorthand]) {
				t.Errorf("%s: flag --%s has shorthand %q, which a legacy caller rejects or already uses", path, f.Name, f.Shorthand)
			}
			if names[f.Name] {
				t.Errorf("%s: flag --%s declared twice", path, f.Name)
			}
			names[f.Name] = true
			if target.Flag(f.Name) == nil {
				t.Errorf("%s: flag --%s is not a flag of %q", path, f.Name, target.CommandPath())
			}
		}
		for _, child := range p.Tree {
			check(child, path+" "+child.Name)
		}
	}
	check(root, "recover")
	if seen < 8 {
		t.Errorf("the descriptor holds %d commands; the tree has more", seen)
	}
}
