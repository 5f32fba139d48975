package backup

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/oc-recover/oc-recover/pkg/backup"
	"github.com/oc-recover/oc-recover/pkg/exitcode"
	"github.com/oc-recover/oc-recover/pkg/output"
	"github.com/oc-recover/oc-recover/pkg/progress"
)

func newCmdList(streams genericiooptions.IOStreams) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "list PARENT-DIR",
		Short: "List the backups in a directory, newest first",
		Example: templates.Examples(`
			{{root}} backup list /srv/etcd-backups
			{{root}} backup list /srv/etcd-backups -o json`),
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := output.Validate(format); err != nil {
				return err
			}
			if fi, err := os.Stat(args[0]); err != nil || !fi.IsDir() {
				return exitcode.Usagef("%s is not a directory", args[0])
			}
			entries, err := backup.List(args[0])
			if err != nil {
				return err
			}
			if output.Structured(format) {
				if entries == nil {
					entries = []backup.Entry{}
				}
				return output.Print(streams.Out, format, entries)
			}
			if len(entries) == 0 {
				fmt.Fprintf(streams.Out, "No backups (directories with %s) in %s\n", backup.ManifestName, args[0])
				return nil
			}
			w := tabwriter.NewWriter(streams.Out, 0, 4, 2, ' ', 0)
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
		},
	}
	cmd.Flags().StringVarP(&format, "output", "o", output.Table, output.FlagUsage)
	return cmd
}
