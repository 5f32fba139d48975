package backup

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/oc-recover/oc-recover/pkg/backup"
	"github.com/oc-recover/oc-recover/pkg/exitcode"
	"github.com/oc-recover/oc-recover/pkg/output"
	"github.com/oc-recover/oc-recover/pkg/progress"
)

func newCmdVerify(streams genericiooptions.IOStreams) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "verify DIR",
		Short: "Check that a backup directory is complete and restorable",
		Long: templates.LongDesc(`
			Check a backup directory as 'backup' does right after a download: the
			files backup.json lists are present with their sizes and sha256, they
			come from one backup, the snapshot's sha256 trailer and bbolt structure
			are sound and it restores into a throw-away etcd data directory, and
			the static resources archive reads to the end and holds the
			kube-apiserver, kube-controller-manager, kube-scheduler and etcd pod
			manifests (and, with etcd encryption on, the encryption configuration).
			A backup taken during a rollout (files named __POSSIBLY_DIRTY__) is
			verified like any other and reported as possibly dirty.`),
		Example: templates.Examples(`
			{{root}} backup verify ./backup-mycluster-20261120-030000
			{{root}} backup verify ./backup-mycluster-20261120-030000 -o json`),
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := output.Validate(format); err != nil {
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
			if output.Structured(format) {
				return output.Print(streams.Out, format, v)
			}
			fmt.Fprintf(streams.Out, "Backup %s is complete and restorable:\n", filepath.Clean(dir))
			for _, f := range v.Files {
				fmt.Fprintf(streams.Out, "  %s\n", f.Name)
			}
			fmt.Fprintf(streams.Out, "  revision %d, %d live keys, database %s, test restore OK\n", v.Snapshot.Revision, v.Snapshot.LiveKeys, progress.HumanBytes(v.Snapshot.DBSize))
			if v.Dirty {
				fmt.Fprintf(streams.Out, "WARNING: possibly dirty: taken during a rollout with --force (%s); its static pod resources may not match its snapshot, and a restore refuses it without --force.\n", backup.DirtyMark)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&format, "output", "o", output.Table, output.FlagUsage)
	return cmd
}
