package restore

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/oc-recover/oc-recover/pkg/backup"
	"github.com/oc-recover/oc-recover/pkg/era"
	"github.com/oc-recover/oc-recover/pkg/openshift"
)

// A restore done from the control-plane hosts' consoles (the quorum was
// lost, so nothing could be staged through the API) leaves its marker on
// the recovery host: state/restored in the prepared directory (run.sh
// recovery writes it) or in the console procedure's directory (its last
// command writes it). Once the restored API answers, `restore` finishes
// that restore's last phase instead of planning a new one: a second
// restore would cost another blackout and lose what the cluster did since.

// restoredMarker is the marker of a restore done on the host, relative to
// its directory. state/finished, written by phase C's clean-up, ends it.
const restoredMarker = "state/restored"

// hostRestoreDirs are where a restore done from a console keeps its state.
var hostRestoreDirs = []string{PreparedDir, manualDir}

// RestoredByHand is the record of the last phase of a restore done from
// the hosts' consoles that has not been finished, nil when no reachable
// control-plane host holds one. It looks on every Ready control-plane node
// not named lost, through a debug pod, and changes nothing; one neither
// Ready nor named lost is refused, as the pre-flight refuses it.
func RestoredByHand(ctx context.Context, c Clients, o Options) (*Record, error) {
	if o.InCluster {
		return nil, nil // pre-flight refuses it
	}
	if err := backup.RequireClusterAdmin(ctx, c.Kube, "a restore"); err != nil {
		return nil, err
	}
	nodes, err := openshift.ControlPlaneNodes(ctx, c.Kube)
	if err != nil {
		return nil, err
	}
	lost := map[string]bool{}
	for _, n := range o.LostNodes {
		lost[n] = true
	}
	var found []hostRestore
	var up, down []string
	for i := range nodes {
		n := &nodes[i]
		if lost[n.Name] {
			continue
		}
		if !openshift.NodeReady(n) {
			down = append(down, n.Name)
			continue
		}
		up = append(up, n.Name)
		hr, err := lookOnHost(ctx, o, n.Name)
		if err != nil {
			return nil, err
		}
		found = append(found, hr...)
	}
	switch {
	case len(found) == 0 && len(down) > 0:
		// A host that is not Ready was not looked on, and may hold the
		// restore: planning a new one could cost a second blackout. The
		// pre-flight would refuse such a node anyway; say it as it does.
		return nil, refuseNotReady(nodes, lost, o.RecoveryNode)
	case len(found) == 0:
		return nil, nil
	case len(found) > 1:
		var where []string
		for _, f := range found {
			where = append(where, f.node+":"+f.dir)
		}
		return nil, refuse("more than one host holds a restore done from its console that was not finished (%s): only one host restores. Find out which one the API serves from (`oc -n openshift-etcd get pods -l k8s-app=etcd`), move the other's %s aside, and run this command again", strings.Join(where, ", "), restoredMarker)
	}
	if len(down) > 0 {
		what, it := "node "+down[0]+" is", "it"
		if len(down) > 1 {
			what, it = "nodes "+strings.Join(down, ", ")+" are", "them"
		}
		return nil, refuse("control-plane %s not Ready, after the restore done on %s's console, and would have no etcd member. Bring %s back, or if gone for good, keep %s off and name %s with --lost-node: the Machines are then replaced", what, found[0].node, it, it, it)
	}
	f := found[0]
	rel, err := era.RequireSupported(ctx, era.Clients{Kube: c.Kube, OpenShiftConfig: c.Config})
	if err != nil {
		return nil, err
	}
	rec := &Record{ID: f.id, Dir: f.dir, Backup: o.Dir, Profile: ProfileFor(rel), RecoveryNode: f.node, ControlPlane: up,
		Lost: append([]string(nil), o.LostNodes...), FiredAt: f.at, Reasons: map[string]string{}, Floors: map[string]int32{}, Done: map[string]bool{}, NewNodes: map[string]string{}}
	sort.Strings(rec.Lost)
	if n, err := c.Config.ConfigV1().Networks().Get(ctx, "cluster", metav1.GetOptions{}); err == nil {
		rec.NetworkType = n.Status.NetworkType
	}
	return rec, nil
}

// FinishSteps are what the last phase of rec does, in order, for a person.
func FinishSteps(rec *Record) []string {
	steps := []string{"approve the nodes' certificate requests throughout"}
	for _, n := range rec.Lost {
		steps = append(steps, "replace lost node "+n+"'s Machine (deleted, then created again under the next free name) and wait for its node")
	}
	steps = append(steps, "lift the quorum guard", "force an etcd revision and wait for a member on every control-plane node", "put the quorum guard back as it was")
	if rec.Profile == Legacy {
		steps = append(steps, "force and wait for a kube-apiserver, kube-controller-manager and kube-scheduler revision")
		if rec.NetworkType == "OVNKubernetes" {
			steps = append(steps, "(NOT AUTOMATED YET: the OVN-Kubernetes reset, by hand)")
		}
	}
	return append(steps, "wait for stable cluster operators", "mark "+rec.dir()+" finished on "+strings.Join(rec.ControlPlane, ", ")+", keeping what it holds")
}

type hostRestore struct {
	node, dir, id string
	at            time.Time
}

// lookOnHost lists the host's unfinished restores: "dir id time" lines.
func lookOnHost(ctx context.Context, o Options, node string) ([]hostRestore, error) {
	r, err := o.StartRunner(ctx, node)
	if err != nil {
		return nil, fmt.Errorf("look for a restore done on %s's console: %w", node, err)
	}
	defer func() { _ = r.Close(context.WithoutCancel(ctx)) }()
	script := `for d in ` + strings.Join(hostRestoreDirs, " ") + `; do
  [ "$d/` + restoredMarker + `" -nt "$d/state/finished" ] || continue
  id=$( . "$d/plan.env" 2>/dev/null && echo "${RESTORE_ID:-}" || true)
  echo "$d ${id:--} $(head -n 1 "$d/` + restoredMarker + `")"
done`
	var out, stderr bytes.Buffer
	code, err := r.Host(ctx, script, nil, &out, &stderr)
	if err != nil || code != 0 {
		return nil, fmt.Errorf("look for a restore done on %s's console: %w", node, hostErr("sh", code, err, &stderr))
	}
	var found []hostRestore
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		at, err := time.Parse(time.RFC3339, f[2])
		if err != nil {
			return nil, fmt.Errorf("%s on %s holds %q, not a time: move it aside if no restore was done there", f[0]+"/"+restoredMarker, node, f[2])
		}
		id := f[1]
		if id == "-" {
			id = "console-" + at.UTC().Format("20060102T150405Z")
		}
		found = append(found, hostRestore{node: node, dir: f[0], id: id, at: at})
	}
	return found, nil
}

// Pending is a restore that `restore` carries on with instead of planning
// a new one, as `restore --dry-run -o json|yaml` prints it.
type Pending struct {
	// What is "resume" (its last phase has begun), "await" (fired on the
	// hosts: it is waited for, then finished) or "finish" (done from the
	// consoles: its last phase is run).
	What         string    `json:"what"`
	Restore      string    `json:"restore"`
	Backup       string    `json:"backup"`
	RecoveryNode string    `json:"recoveryNode"`
	At           time.Time `json:"at"`
	Dir          string    `json:"dir,omitempty"`
	LostNodes    []string  `json:"lostNodes,omitempty"`
	Steps        []string  `json:"steps,omitempty"`
}

// PendingRecord is rec as a Pending of kind what; finish gives the steps.
func PendingRecord(what string, rec *Record) Pending {
	p := Pending{What: what, Restore: rec.ID, Backup: rec.Backup, RecoveryNode: rec.RecoveryNode, At: rec.FiredAt, Dir: rec.dir(), LostNodes: rec.Lost}
	if what == "finish" {
		p.Steps = FinishSteps(rec)
	}
	return p
}

// PendingJournal is a fired restore's journal as a Pending.
func PendingJournal(j *Journal) Pending {
	return Pending{What: "await", Restore: j.Plan.ID, Backup: j.Plan.Backup.Dir, RecoveryNode: j.Plan.Recovery.Name, At: j.FiredAt, Dir: StateDir + "/" + j.Plan.ID, LostNodes: j.Plan.LostNodes}
}
