// Package version implements `oc recover version`.
package version

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/oc-recover/oc-recover/pkg/cmd/internal/options"
	"github.com/oc-recover/oc-recover/pkg/cmd/internal/output"
	"github.com/oc-recover/oc-recover/pkg/version"
)

var versionExample = templates.Examples(`
	# Print the version of this plugin
	{{root}} version

	# Print it as JSON, for scripts and bug reports
	{{root}} version -o json`)

// Options holds the flags of `version`.
type Options struct {
	Output string

	genericiooptions.IOStreams
}

// NewOptions returns Options with the flag defaults.
func NewOptions(streams genericiooptions.IOStreams) *Options {
	return &Options{Output: output.Table, IOStreams: streams}
}

// NewCmdVersion returns the `version` command. It needs no cluster access.
func NewCmdVersion(streams genericiooptions.IOStreams) *cobra.Command {
	o := NewOptions(streams)
	cmd := &cobra.Command{
		Use:     "version",
		Short:   "Print the version of this plugin",
		Long:    "Print the version, git commit, build date, Go version and platform of this plugin.",
		Example: versionExample,
		Args:    cobra.NoArgs,
		// version needs no cluster: no getter.
		RunE: options.RunE(nil, o),
	}
	cmd.Flags().StringVarP(&o.Output, "output", "o", o.Output, "Output format. One of: table|json|yaml.")
	return cmd
}

// Complete fills in what the flags do not say. Nothing yet; kept so that
// version follows the same Complete -> Validate -> Run shape as every command.
func (o *Options) Complete(genericclioptions.RESTClientGetter, []string) error {
	return nil
}

// Validate checks the flags.
func (o *Options) Validate() error {
	return output.Validate(o.Output)
}

// Run prints the version of the running binary.
func (o *Options) Run(context.Context) error {
	return printVersion(o.Out, version.Get(), o.Output)
}

// printVersion writes info to out in the given output format.
func printVersion(out io.Writer, info version.Info, format string) error {
	switch format {
	case output.JSON, output.YAML:
		return output.Print(out, format, info)
	case output.Table:
		_, err := fmt.Fprintf(out,
			"Version:    %s\nGit commit: %s\nBuild date: %s\nGo version: %s\nPlatform:   %s\n",
			info.GitVersion, info.GitCommit, info.BuildDate, info.GoVersion, info.Platform)
		return err
	}
	// Validate rejects other formats; reaching this is a bug, reported, not a panic.
	return fmt.Errorf("unvalidated output format %q", format)
}
