package restore

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/oc-recover/oc-recover/pkg/debugnode"
)

// The host runner (runner.sh) is one control-plane host's part of a
// restore without the API. `restore prepare` leaves it on every
// control-plane host with a verified backup while the cluster is healthy,
// so that the day etcd loses its quorum the restore is one console command
// per host.
//
//go:embed runner.sh
var runnerScript []byte

// PreparedDir is where `restore prepare` leaves the backup and the runner
// on every control-plane host.
const PreparedDir = StateDir + "/prepared"

// DefaultPeerStopTimeout is how long the recovery host waits for etcd to
// stop on every peer before it gives up, changing nothing.
const DefaultPeerStopTimeout = 15 * time.Minute

// runnerDeadlines are the runner's deadlines, in seconds, from the peer
// stop timeout: how long a peer waits for its containers to stop (at most
// 5 minutes, a third of the recovery host's wait), how long the recovery
// host waits for etcd to stop on the peers, and how long a peer waits for
// the recovery host to serve a new cluster before putting its own data
// back: three times the recovery host's wait, longer than that and the
// restore itself.
func runnerDeadlines(peerStop time.Duration) (stop, recovery, peer int) {
	if peerStop <= 0 {
		peerStop = DefaultPeerStopTimeout
	}
	recovery = max(int(peerStop.Seconds()), 10)
	stop = max(min(300, recovery/3), 3)
	return stop, recovery, 3 * recovery
}

// Prepared is what `restore prepare` left where.
type Prepared struct {
	Plan *Plan `json:"plan"`
	// Dir is the directory on every host.
	Dir string `json:"dir"`
	// Hosts are the control-plane hosts that hold it.
	Hosts []Host `json:"hosts"`
	// Replaced are hosts whose earlier prepared directory had been used
	// by a restore: it was kept, renamed, and is named here.
	Replaced map[string]string `json:"kept,omitempty"`
}

// Instructions are what a person reads once the backup is prepared: where
// it is, and the console commands of the day, command naming the plugin.
func (p *Prepared) Instructions(command string) []string {
	b := p.Plan.Backup
	var hosts []string
	for _, h := range p.Hosts {
		hosts = append(hosts, h.Name)
	}
	lines := []string{fmt.Sprintf("Prepared backup %s (%s + %s, OpenShift %s, taken %s) in %s on %s.",
		b.Dir, b.Snapshot, b.Resources, b.Version, b.TakenAt.Format(time.RFC3339), p.Dir, strings.Join(hosts, ", "))}
	for node, kept := range p.Replaced {
		lines = append(lines, fmt.Sprintf("  %s: the earlier prepared directory had been used by a restore; it is kept as %s", node, kept))
	}
	recovery := p.Hosts[0].Name
	lines = append(lines, fmt.Sprintf("If etcd loses its quorum, restore from the consoles as root (sudo -i), on each host that is up, in this order (%s restores here; any host that is up can, with its name in the peers' commands):", recovery))
	for _, c := range p.Commands(recovery) {
		lines = append(lines, fmt.Sprintf("  %s: %s", c.Node, c.Command))
	}
	return append(lines, fmt.Sprintf("Keep the hosts that are gone off. Once the API answers, `%s restore %s` (with --lost-node for each host that is gone) finishes the restore: the nodes' certificate requests approved, the lost hosts' Machines replaced, etcd redeployed until every control-plane node has a member, and the rest of \"Restoring to a previous cluster state\" (OpenShift documentation, Backup and restore).", command, b.Dir))
}

// Commands are the console commands of the day, with recovery restoring:
// the peers first, then the recovery host.
func (p *Prepared) Commands(recovery string) []HostCommand {
	var cmds []HostCommand
	for _, h := range p.Hosts {
		if h.Name != recovery {
			cmds = append(cmds, HostCommand{Node: h.Name, Command: "bash " + PreparedDir + "/run.sh peer " + recovery})
		}
	}
	return append(cmds, HostCommand{Node: recovery, Command: "bash " + PreparedDir + "/run.sh recovery"})
}

// HostCommand is a command to run as root on a host's console.
type HostCommand struct {
	Node    string `json:"node"`
	Command string `json:"command"`
}

// planEnv is a host's plan.env: what the runner knows of the restore.
func planEnv(id string, profile Profile, this Host, all []Host, dataMove string, peerStop time.Duration) string {
	stop, recovery, peer := runnerDeadlines(peerStop)
	var nodes []string
	for _, h := range all {
		nodes = append(nodes, h.Name+"="+h.IP)
	}
	sort.Strings(nodes)
	vars := [][2]string{
		{"RESTORE_ID", id}, {"PROFILE", string(profile)}, {"THIS_NODE", this.Name}, {"THIS_IP", this.IP},
		{"NODES", strings.Join(nodes, " ")}, {"DATA_MOVE", dataMove},
		{"STOP_TIMEOUT", fmt.Sprint(stop)}, {"RECOVERY_DEADLINE", fmt.Sprint(recovery)}, {"PEER_DEADLINE", fmt.Sprint(peer)},
	}
	var b strings.Builder
	for _, v := range vars {
		fmt.Fprintf(&b, "%s=%s\n", v[0], debugnode.ShellQuote(v[1]))
	}
	return b.String()
}

// Prepare checks the restore as Preflight does and leaves the backup, the
// runner and each host's plan on every control-plane host, in PreparedDir.
// An earlier prepared directory is replaced once the new one is complete;
// one that a restore used (it holds the data that restore moved aside) is
// kept under another name.
func Prepare(ctx context.Context, c Clients, o Options, progress func(name string, done, total int64)) (*Prepared, error) {
	p, err := Preflight(ctx, c, o)
	if err != nil {
		return nil, err
	}
	all := append([]Host{p.Recovery}, p.Peers...)
	sort.Slice(all, func(i, j int) bool { return all[i].Name < all[j].Name })
	out := &Prepared{Plan: p, Dir: PreparedDir, Hosts: all}
	for _, h := range all {
		kept, err := prepareHost(ctx, o, p, h, all, progress)
		if err != nil {
			return out, fmt.Errorf("prepare %s: %w", h.Name, err)
		}
		if kept != "" {
			if out.Replaced == nil {
				out.Replaced = map[string]string{}
			}
			out.Replaced[h.Name] = kept
		}
	}
	return out, nil
}

// prepareHost fills a fresh directory beside PreparedDir and swaps it in.
func prepareHost(ctx context.Context, o Options, p *Plan, h Host, all []Host, progress func(name string, done, total int64)) (kept string, err error) {
	r, err := o.StartRunner(ctx, h.Name)
	if err != nil {
		return "", err
	}
	defer func() {
		if cerr := r.Close(context.WithoutCancel(ctx)); cerr != nil && err == nil {
			err = cerr
		}
	}()
	fresh := PreparedDir + ".new-" + p.ID
	if err := stage(ctx, r, p, h, all, "prepared-"+p.ID, fresh, true, progress); err != nil {
		return "", err
	}
	// The swap keeps a used directory: it holds the data its restore
	// moved aside.
	used := StateDir + "/prepared-used-" + p.ID
	swap := `set -e
if [ -d ` + PreparedDir + ` ]; then
  if [ -n "$(ls -A ` + PreparedDir + `/state 2>/dev/null)" ]; then mv ` + PreparedDir + ` ` + used + `; echo kept
  else rm -rf ` + PreparedDir + `; fi
fi
mv ` + fresh + ` ` + PreparedDir + `
sync`
	var stdout, stderr bytes.Buffer
	if code, err := r.Host(ctx, swap, nil, &stdout, &stderr); err != nil || code != 0 {
		removeFresh(ctx, r, fresh)
		return "", hostErr("put the prepared directory in place", code, err, &stderr)
	}
	if strings.Contains(stdout.String(), "kept") {
		return used, nil
	}
	return "", nil
}

// stage fills fresh, a new directory on host h, with a restore's runner,
// this host's plan and, withBackup, the backup pair; then it records the
// etcd cluster that the host's member serves now. A peer tells the
// restored cluster from the old one by it when its own member is down on
// the day. On any failure fresh is removed again: a half-written
// directory is never left to be found.
func stage(ctx context.Context, r debugnode.Runner, p *Plan, h Host, all []Host, id, fresh string, withBackup bool, progress func(name string, done, total int64)) (err error) {
	var stderr bytes.Buffer
	if code, err := r.Host(ctx, "set -e; rm -rf "+fresh+"; install -d -m 0700 "+fresh+"/backup "+fresh+"/state", nil, io.Discard, &stderr); err != nil || code != 0 {
		return hostErr("create "+fresh, code, err, &stderr)
	}
	defer func() {
		if err != nil {
			removeFresh(ctx, r, fresh)
		}
	}()
	if withBackup {
		for _, name := range []string{p.Backup.Snapshot, p.Backup.Resources} {
			if err := uploadFile(ctx, r, filepath.Join(p.Backup.Dir, name), fresh+"/backup/"+name, func(done, total int64) {
				if progress != nil {
					progress(h.Name+": "+name, done, total)
				}
			}); err != nil {
				return fmt.Errorf("upload %s: %w", name, err)
			}
		}
	}
	dataMove := "rename"
	for _, probe := range p.Hosts {
		if probe.Node == h.Name && probe.EtcdMountPoint {
			dataMove = "within"
		}
	}
	env := planEnv(id, p.Profile, h, all, dataMove, p.PeerStopTimeout)
	for name, data := range map[string][]byte{"run.sh": runnerScript, "plan.env": []byte(env)} {
		if _, err := r.Upload(ctx, bytes.NewReader(data), int64(len(data)), fresh+"/"+name, nil); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	record := `set -e
id=$(bash ` + fresh + `/run.sh cluster-id)
[ -n "$id" ] || { echo "etcd on this host does not say which etcd cluster it serves: is its etcd pod running?"; exit 1; }
echo "OLD_CLUSTER_ID=$id" >>` + fresh + `/plan.env
sync`
	stderr.Reset()
	var stdout bytes.Buffer
	if code, err := r.Host(ctx, record, nil, &stdout, &stderr); err != nil || code != 0 {
		stderr.WriteString(stdout.String())
		return hostErr("read the etcd cluster ID on "+h.Name, code, err, &stderr)
	}
	return nil
}

func uploadFile(ctx context.Context, r debugnode.Runner, local, remote string, progress func(done, total int64)) error {
	f, err := os.Open(local)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	_, err = r.Upload(ctx, f, fi.Size(), remote, progress)
	return err
}

// removeFresh removes a directory that stage was filling, even after the
// context ended (Ctrl-C).
func removeFresh(ctx context.Context, r debugnode.Runner, fresh string) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	_, _ = r.Host(cctx, "rm -rf "+fresh, nil, io.Discard, io.Discard)
}

func hostErr(what string, code int, err error, stderr *bytes.Buffer) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return fmt.Errorf("%s: exit %d: %s", what, code, strings.TrimSpace(stderr.String()))
}
