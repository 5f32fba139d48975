package backup

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/oc-recover/oc-recover/pkg/debugnode"
	"github.com/oc-recover/oc-recover/pkg/version"
)

// Request is one backup as a command asks for it. Run owns the whole life
// of its directory: the name, the creation, the removal when the backup
// fails, and the pruning of older backups beside it.
type Request struct {
	// Dir is the directory for the backup, new or empty. When empty, Run
	// creates one under Parent named by DefaultOutputDir.
	Dir    string
	Parent string
	// Keep, when positive, leaves only the Keep newest backups of the
	// cluster in the directory's parent after a successful backup.
	Keep int
	// Options shape the backup itself; its OutputDir is set by Run, and an
	// empty Tool records this build of oc-recover.
	Options
}

// OutputDir is the directory the request's backup goes into.
func (r Request) OutputDir(cl *Cluster) string {
	if r.Dir != "" {
		return r.Dir
	}
	return filepath.Join(r.Parent, DefaultOutputDir(cl, r.Now))
}

// Result is a backup that Run took.
type Result struct {
	Dir      string
	Manifest *Manifest
	// Pruned lists the older backups removed for Keep.
	Pruned []string
}

// Tool is how backup.json names this build of oc-recover.
func Tool() string { return "oc-recover " + version.Get().GitVersion }

// Run takes a backup of the pre-flighted cluster cl into the request's
// directory. When the backup fails, a directory Run created is removed
// again (it holds nothing: Take removes its partial files), so a failed run
// leaves nothing that looks like a backup. When only the pruning fails,
// Run returns the Result and the pruning error.
func Run(ctx context.Context, start debugnode.StartFunc, cl *Cluster, req Request, p Progress) (*Result, error) {
	dir := req.OutputDir(cl)
	created, err := PrepareOutputDir(dir)
	if err != nil {
		return nil, err
	}
	opts := req.Options
	opts.OutputDir = dir
	if opts.Tool == "" {
		opts.Tool = Tool()
	}
	p.Step("Backing up etcd of cluster %s (OpenShift %s) from %s into %s", cl.ID, cl.Version, cl.Node, dir)
	m, err := Take(ctx, start, cl, opts, p)
	if err != nil {
		if created {
			removeIfEmpty(dir)
		}
		return nil, err
	}
	res := &Result{Dir: dir, Manifest: m}
	if req.Keep > 0 {
		res.Pruned, err = Prune(filepath.Dir(filepath.Clean(dir)), m.ClusterID, req.Keep)
		if err != nil {
			return res, fmt.Errorf("pruning older backups: %w", err)
		}
	}
	return res, nil
}

// removeIfEmpty removes a directory this run created, unless something is
// in it.
func removeIfEmpty(dir string) {
	if entries, err := os.ReadDir(dir); err == nil && len(entries) == 0 {
		_ = os.Remove(dir)
	}
}
