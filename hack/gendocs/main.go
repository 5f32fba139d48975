// Command gendocs generates, from the cobra command tree, the files that
// describe the commands and are checked in: the legacy plugin descriptor
// (plugins.yaml) and the Markdown command reference (docs/oc_recover*.md).
//
//	go run ./hack/gendocs -plugins plugins.yaml -docs docs
//
// (`make plugins.yaml docs`). The output depends only on the command tree: no
// dates, no paths of this machine, no version. A test in this package fails
// when the checked-in files differ from what it generates.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/oc-recover/oc-recover/pkg/cmd"
)

const (
	// docsCommandName names the commands in the reference: an OpenShift tool first.
	docsCommandName = "oc recover"
	// legacyCommandName names them in the legacy descriptor's help texts,
	// where the binary itself names them after its caller at run time.
	legacyCommandName = "oc plugin recover"
	// legacyBinary is the descriptor's command: the binary beside plugin.yaml.
	legacyBinary = "./kubectl-recover"
	// docsPrefix starts the name of every generated reference file.
	docsPrefix = "oc_recover"
)

func main() {
	pluginsPath := flag.String("plugins", "", "write the legacy plugin descriptor to this file")
	docsDir := flag.String("docs", "", "write the Markdown command reference into this directory")
	flag.Parse()
	if *pluginsPath == "" && *docsDir == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: gendocs [-plugins FILE] [-docs DIR]")
		os.Exit(2)
	}
	if *pluginsPath != "" {
		if err := writePluginDescriptor(*pluginsPath); err != nil {
			fmt.Fprintln(os.Stderr, "gendocs:", err)
			os.Exit(1)
		}
	}
	if *docsDir != "" {
		if err := writeDocs(*docsDir); err != nil {
			fmt.Fprintln(os.Stderr, "gendocs:", err)
			os.Exit(1)
		}
	}
}

// rootCmd builds the command tree as a user of commandName sees it, with
// defaults that do not depend on this machine.
func rootCmd(commandName string) *cobra.Command {
	// --cache-dir defaults to $KUBECACHEDIR, else $HOME/.kube/cache.
	os.Setenv("KUBECACHEDIR", "$HOME/.kube/cache")
	streams := genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	return cmd.NewRootCmdNamed(commandName, streams)
}

// --- the legacy plugin descriptor --------------------------------------------

// legacyPlugin is kubectl 1.8-1.11's plugin.yaml (pkg/kubectl/plugins
// Description), which oc 3.x reads too.
type legacyPlugin struct {
	Name      string          `yaml:"name"`
	ShortDesc string          `yaml:"shortDesc"`
	LongDesc  string          `yaml:"longDesc,omitempty"`
	Example   string          `yaml:"example,omitempty"`
	Command   string          `yaml:"command"`
	Flags     []legacyFlag    `yaml:"flags,omitempty"`
	Tree      []*legacyPlugin `yaml:"tree,omitempty"`
}

type legacyFlag struct {
	Name      string `yaml:"name"`
	Shorthand string `yaml:"shorthand,omitempty"`
	Desc      string `yaml:"desc"`
	DefValue  string `yaml:"defValue,omitempty"`
}

// callerShorthands are the one-letter flags of kubectl 1.11's and oc 3.x's
// own: -h (help), -n (namespace), -s (server), -v (log level). A plugin flag
// may not take one (the caller would panic at start).
var callerShorthands = map[string]bool{"h": true, "n": true, "s": true, "v": true}

const pluginsHeader = `# Legacy plugin descriptor for kubectl 1.8-1.11 and oc 3.x (` + "`oc plugin recover`" + `).
# Install it as ~/.kube/plugins/recover/plugin.yaml beside the kubectl-recover
# binary (a release archive unpacked into that directory holds both). The
# caller passes flags in the environment, and the binary reads them there;
# boolean flags need a value: --yes=true.
#
# Generated from the command tree by ` + "`make plugins.yaml`" + `; do not edit.
`

func writePluginDescriptor(path string) error {
	data, err := pluginDescriptor()
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

// pluginDescriptor renders the descriptor of the whole command tree.
func pluginDescriptor() ([]byte, error) {
	root := rootCmd(legacyCommandName)
	plugin := legacyDescription(root, callerGlobalFlags())
	plugin.Name = "recover"

	var buf bytes.Buffer
	buf.WriteString(pluginsHeader)
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(plugin); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// callerGlobalFlags are the flags that reach the plugin as the caller's own
// global flags (KUBECTL_PLUGINS_GLOBAL_FLAG_*): the kubeconfig flags and -v.
// Declared again by the plugin they would shadow the caller's.
func callerGlobalFlags() map[string]bool {
	fs := pflag.NewFlagSet("caller", pflag.ContinueOnError)
	genericclioptions.NewConfigFlags(true).AddFlags(fs)
	names := map[string]bool{"v": true, "help": true}
	fs.VisitAll(func(f *pflag.Flag) { names[f.Name] = true })
	return names
}

func legacyDescription(c *cobra.Command, callerFlags map[string]bool) *legacyPlugin {
	command := legacyBinary
	if c.HasParent() {
		command += " " + strings.TrimPrefix(c.CommandPath(), c.Root().CommandPath()+" ")
	}
	p := &legacyPlugin{
		Name:      c.Name(),
		ShortDesc: c.Short,
		LongDesc:  trimLines(c.Long),
		Example:   dedent(trimLines(c.Example)),
		Command:   command,
	}
	// The caller's flags of a plugin command are its own: flags are not
	// inherited down the tree, so each command declares every flag it takes.
	addFlag := func(f *pflag.Flag) {
		if f.Hidden || f.Deprecated != "" || callerFlags[f.Name] {
			return
		}
		shorthand := f.Shorthand
		if callerShorthands[shorthand] || f.ShorthandDeprecated != "" {
			shorthand = ""
		}
		desc := f.Usage
		if desc == "" {
			desc = f.Name
		}
		defValue := f.DefValue
		if defValue == "[]" {
			defValue = ""
		}
		p.Flags = append(p.Flags, legacyFlag{Name: f.Name, Shorthand: shorthand, Desc: desc, DefValue: defValue})
	}
	c.NonInheritedFlags().VisitAll(addFlag)
	c.InheritedFlags().VisitAll(addFlag)

	for _, child := range c.Commands() {
		if !child.IsAvailableCommand() || child.Name() == "completion" {
			// completion scripts hook a binary on PATH, not a legacy plugin.
			continue
		}
		p.Tree = append(p.Tree, legacyDescription(child, callerFlags))
	}
	return p
}

// trimLines removes trailing spaces from every line, so YAML can show the
// text as a literal block.
func trimLines(s string) string {
	lines := strings.Split(strings.TrimRight(s, " \n"), "\n")
	for i, line := range lines {
		lines[i] = strings.TrimRight(line, " \t")
	}
	return strings.Join(lines, "\n")
}

// dedent removes the indentation all non-empty lines share (cobra examples
// are indented by two spaces; the caller indents them itself).
func dedent(s string) string {
	lines := strings.Split(s, "\n")
	indent := -1
	for _, line := range lines {
		if strings.TrimSpace(line) == "" {
			continue
		}
		if n := len(line) - len(strings.TrimLeft(line, " ")); indent < 0 || n < indent {
			indent = n
		}
	}
	for i, line := range lines {
		if len(line) >= indent && indent > 0 {
			lines[i] = line[indent:]
		}
	}
	return strings.Join(lines, "\n")
}

// --- the Markdown reference ------------------------------------------------

// writeDocs replaces the generated reference files in dir.
func writeDocs(dir string) error {
	files, err := docs()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	old, err := filepath.Glob(filepath.Join(dir, docsPrefix+"*.md"))
	if err != nil {
		return err
	}
	for _, f := range old {
		if err := os.Remove(f); err != nil {
			return err
		}
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// docs renders one Markdown file per available command, by file name.
func docs() (map[string][]byte, error) {
	root := rootCmd(docsCommandName)
	files := map[string][]byte{}
	var walk func(*cobra.Command) error
	walk = func(c *cobra.Command) error {
		if !c.IsAvailableCommand() || c.IsAdditionalHelpTopicCommand() {
			return nil
		}
		c.DisableAutoGenTag = true // the tag carries today's date
		var buf bytes.Buffer
		if err := doc.GenMarkdownCustom(c, &buf, func(s string) string { return s }); err != nil {
			return err
		}
		files[strings.ReplaceAll(c.CommandPath(), " ", "_")+".md"] = buf.Bytes()
		for _, child := range c.Commands() {
			if err := walk(child); err != nil {
				return err
			}
		}
		return nil
	}
	// The root is always documented, however cobra judges its availability.
	root.DisableAutoGenTag = true
	var buf bytes.Buffer
	if err := doc.GenMarkdownCustom(root, &buf, func(s string) string { return s }); err != nil {
		return nil, err
	}
	files[docsPrefix+".md"] = buf.Bytes()
	for _, child := range root.Commands() {
		if err := walk(child); err != nil {
			return nil, err
		}
	}
	return files, nil
}
