package backup

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/oc-recover/oc-recover/pkg/backup"
	"github.com/oc-recover/oc-recover/pkg/cmd/internal/options"
	"github.com/oc-recover/oc-recover/pkg/cmd/internal/output"
	"github.com/oc-recover/oc-recover/pkg/cmd/internal/progress"
	"github.com/oc-recover/oc-recover/pkg/exitcode"
)

// dirOptions are the flag and argument of the commands that read one
// backup directory on this machine (backup list, backup verify): they need
// no cluster, so no getter.
type dirOptions struct {
	Output string
	Dir    string

	streams genericiooptions.IOStreams
}

// Complete takes the directory from the argument.
func (o *dirOptions) Complete(_ genericclioptions.RESTClientGetter, args []string) error {
	o.Dir = args[0]
	return nil
}

// Validate checks the flag and that the directory is one.
func (o *dirOptions) Validate() error {
	if err := output.Validate(o.Output); err != nil {
		return err
	}
	if fi, err := os.Stat(o.Dir); err != nil || !fi.IsDir() {
		return exitcode.Usagef("%s is not a directory", o.Dir)
	}
	return nil
}

// ListOptions holds `backup list`'s flag and argument.
type ListOptions struct{ dirOptions }

func newCmdList(streams genericiooptions.IOStreams) *cobra.Command {
	o := &ListOptions{dirOptions{Output: output.Table, streams: streams}}
	cmd := &cobra.Command{
		Use:   "list PARENT-DIR",
		Short: "List the backups in a directory, newest first",
		Example: templates.Examples(`
			{{root}} backup list /srv/etcd-backups
			{{root}} backup list /srv/etcd-backups -o json`),
		Args: cobra.ExactArgs(1),
		RunE: options.RunE(nil, o),
	}
	cmd.Flags().StringVarP(&o.Output, "output", "o", o.Output, output.FlagUsage)
	return cmd
}

// Run lists and prints the backups.
func (o *ListOptions) Run(context.Context) error {
	entries, err := backup.List(o.Dir)
	if err != nil {
		return err
	}
	if output.Structured(o.Output) {
		if entries == nil {
			entries = []backup.Entry{}
		}
		return output.Print(o.streams.Out, o.Output, entries)
	}
	if len(entries) == 0 {
		fmt.Fprintf(o.streams.Out, "No backups (directories with %s) in %s\n", backup.ManifestName, o.Dir)
		return nil
	}
	w := tabwriter.NewWriter(o.streams.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tTAKEN\tAGE\tVERSION\tNODE\tREVISION\tSIZE\tNOTE")
	for _, e := range entries {
		note := e.Problem
		if e.Dirty() {
			note = strings.TrimPrefix(note+"; possibly dirty (taken during a rollout)", "; ")
		}
		if e.Manifest == nil && len(e.Files) > 0 {
			var size int64
			for _, f := range e.Files {
				size += f.Size
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t-\t-\t-\t%s\t%s\n", filepath.Base(e.Dir), e.Created().UTC().Format(time.RFC3339),
				time.Since(e.Created()).Round(time.Minute), progress.HumanBytes(size), note)
			continue
		}
		if e.Manifest == nil {
			fmt.Fprintf(w, "%s\t-\t-\t-\t-\t-\t-\t%s\n", filepath.Base(e.Dir), note)
			continue
		}
		m := e.Manifest
		var size int64
		for _, f := range m.Files {
			size += f.Size
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", filepath.Base(e.Dir), m.StartedAt.UTC().Format(time.RFC3339),
			time.Since(m.StartedAt).Round(time.Minute), m.Version, m.Node, m.Etcd.Revision, progress.HumanBytes(size), note)
	}
	return w.Flush()
}
