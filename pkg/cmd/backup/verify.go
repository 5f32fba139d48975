package backup

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/oc-recover/oc-recover/pkg/backup"
	"github.com/oc-recover/oc-recover/pkg/cmd/internal/options"
	"github.com/oc-recover/oc-recover/pkg/cmd/internal/output"
	"github.com/oc-recover/oc-recover/pkg/cmd/internal/progress"
)

// VerifyOptions holds `backup verify`'s flag and argument.
type VerifyOptions struct{ dirOptions }

func newCmdVerify(streams genericiooptions.IOStreams) *cobra.Command {
	o := &VerifyOptions{dirOptions{Output: output.Table, streams: streams}}
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
		RunE: options.RunE(nil, o),
	}
	cmd.Flags().StringVarP(&o.Output, "output", "o", o.Output, output.FlagUsage)
	return cmd
}

// Run verifies the backup and prints what it found.
func (o *VerifyOptions) Run(context.Context) error {
	dir := o.Dir
	v, err := backup.Verify(dir)
	if err != nil {
		return fmt.Errorf("backup %s is NOT usable: %w", dir, err)
	}
	if output.Structured(o.Output) {
		return output.Print(o.streams.Out, o.Output, v)
	}
	fmt.Fprintf(o.streams.Out, "Backup %s is complete and restorable:\n", filepath.Clean(dir))
	for _, f := range v.Files {
		fmt.Fprintf(o.streams.Out, "  %s\n", f.Name)
	}
	fmt.Fprintf(o.streams.Out, "  revision %d, %d live keys, database %s, test restore OK\n", v.Snapshot.Revision, v.Snapshot.LiveKeys, progress.HumanBytes(v.Snapshot.DBSize))
	printIdentity(o.streams.Out, v, time.Now())
	if v.Dirty {
		fmt.Fprintf(o.streams.Out, "WARNING: possibly dirty: taken during a rollout with --force (%s); its static pod resources may not match its snapshot, and a restore refuses it without --force.\n", backup.DirtyMark)
	}
	return nil
}

// printIdentity says which cluster and release the backup is of, as the
// snapshot itself says, and what its certificates will be worth when it is
// restored.
func printIdentity(w io.Writer, v *backup.Verification, now time.Time) {
	c := v.Snapshot.Cluster
	switch {
	case c.ClusterID != "":
		fmt.Fprintf(w, "  cluster %s, OpenShift %s (the snapshot's clusterversions/version)\n", c.ClusterID, output.OrDash(c.Version))
	case v.Manifest != nil:
		fmt.Fprintf(w, "  cluster %s, OpenShift %s (%s; the snapshot holds no clusterversions/version)\n", v.Manifest.ClusterID, v.Manifest.Version, backup.ManifestName)
	}
	if c.Encrypted() {
		fmt.Fprintf(w, "  etcd encryption %s, its configuration in the static resources\n", c.EncryptionType)
	}
	r := v.Resources
	if r.Certificates > 0 {
		fmt.Fprintf(w, "  %d certificates in the static resources, the first to expire: %s on %s\n", r.Certificates, r.FirstExpiring, r.FirstExpiry.Format(time.RFC3339))
	}
	if c.Updating {
		fmt.Fprintf(w, "WARNING: taken while the cluster was updating to %s: a restore brings back a cluster in the middle of an update.\n", c.Version)
	}
	if !r.FirstExpiry.IsZero() && r.FirstExpiry.Before(now) {
		fmt.Fprintf(w, "WARNING: certificates in it have expired since (%s): after a restore the cluster regenerates them, and the nodes' certificate signing requests wait for approval (`oc recover csr approve`).\n", r.FirstExpiring)
	}
}
