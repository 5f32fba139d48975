package backup

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/kubectl/pkg/util/templates"
	"sigs.k8s.io/yaml"

	"github.com/oc-recover/oc-recover/pkg/backup"
	"github.com/oc-recover/oc-recover/pkg/exitcode"
)

func newCmdVerify(streams genericiooptions.IOStreams) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "verify DIR",
		Short: "Check that a backup directory is complete and restorable",
		Long: templates.LongDesc(`
			Check a backup directory as 'backup' does right after a download: the
			files backup.json lists are present with their sizes and sha256, they
			come from one backup, the snapshot's sha256 trailer and bbolt structure
			are sound and it restores into a throw-away etcd data directory, and
			the static resources archive reads to the end.`),
		Example: templates.Examples(`
			{{root}} backup verify ./backup-mycluster-20261120-030000
			{{root}} backup verify ./backup-mycluster-20261120-030000 -o json`),
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := validateOutput(output); err != nil {
				return err
			}
			dir := args[0]
			if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
				return exitcode.Usagef("%s is not a directory", dir)
			}
			v, err := backup.Verify(dir)
			if err != nil {
				return fmt.Errorf("backup %s is NOT usable: %w", dir, err)
			}
			switch output {
			case "json", "yaml":
				return printStructured(streams, output, v)
			}
			fmt.Fprintf(streams.Out, "Backup %s is complete and restorable:\n", filepath.Clean(dir))
			for _, f := range v.Files {
				fmt.Fprintf(streams.Out, "  %s\n", f.Name)
			}
			fmt.Fprintf(streams.Out, "  revision %d, %d keys, database %s, test restore OK\n", v.Snapshot.Revision, v.Snapshot.TotalKeys, humanBytes(v.Snapshot.DBSize))
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "Output format: table, json or yaml.")
	return cmd
}

func validateOutput(output string) error {
	switch output {
	case "table", "json", "yaml":
		return nil
	}
	return exitcode.Usagef("--output must be table, json or yaml, got %q", output)
}

func printStructured(streams genericiooptions.IOStreams, format string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if format == "yaml" {
		if data, err = yaml.JSONToYAML(data); err != nil {
			return err
		}
		_, err = streams.Out.Write(data)
		return err
	}
	_, err = fmt.Fprintln(streams.Out, string(data))
	return err
}
