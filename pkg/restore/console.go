package restore

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/oc-recover/oc-recover/pkg/backup"
	"github.com/oc-recover/oc-recover/pkg/era"
)

// When the API does not answer (etcd has lost quorum), nothing can be
// staged through it: the restore is done from the control-plane hosts'
// consoles. ConsoleProcedure renders OpenShift's procedure for this
// cluster from the backup alone (its snapshot names the release and the
// control-plane nodes), with this tool's rules: data moved aside within
// /var (never to /tmp, memory on RHCOS), nothing deleted, an earlier
// restore's data kept.

// manualDir is where the console procedure moves things on each host.
const manualDir = StateDir + "/console"

// ConsoleOptions say which host restores and which are gone.
type ConsoleOptions struct {
	// Recovery is the host to restore on; empty takes the first
	// control-plane node of the snapshot that is not lost.
	Recovery string
	// Lost are the hosts that are gone and stay off.
	Lost []string
	// Command is how the user runs the plugin.
	Command string
}

// ConsoleProcedure writes the console commands, host by host, and returns
// an error when the backup does not say enough to render them.
func ConsoleProcedure(w io.Writer, v *backup.Verification, o ConsoleOptions) error {
	rel, ok := era.Parse(v.Version())
	if !ok {
		return fmt.Errorf("the backup does not say which release it was taken on, so the console procedure cannot be rendered")
	}
	profile := ProfileFor(rel)
	nodes := v.Snapshot.Cluster.ControlPlane
	if len(nodes) == 0 {
		return fmt.Errorf("the backup's snapshot names no control-plane node, so the console procedure cannot be rendered")
	}
	lost := map[string]bool{}
	for _, n := range o.Lost {
		lost[n] = true
	}
	recovery := o.Recovery
	for _, n := range nodes {
		if recovery == "" && !lost[n.Name] {
			recovery = n.Name
		}
	}
	var r *Host
	var peers []Host
	for _, n := range nodes {
		h := Host{Name: n.Name, IP: n.IP}
		switch {
		case n.Name == recovery:
			r = &h
		case !lost[n.Name]:
			peers = append(peers, h)
		}
	}
	if r == nil {
		return fmt.Errorf("recovery node %q is not a control-plane node of the backup", recovery)
	}
	staged := "/home/core/" + filepath.Base(filepath.Clean(v.Dir))
	fmt.Fprintf(w, "Restore from the control-plane hosts' consoles (OpenShift %s, %s profile), as \"Restoring to a previous cluster state\" (OpenShift documentation, Backup and restore) does, run as root (sudo -i):\n", rel.Version, profile)
	if len(o.Lost) > 0 {
		fmt.Fprintf(w, "Keep %s off: a lost host that starts again with its old data would rejoin the old cluster.\n", strings.Join(o.Lost, ", "))
	}
	step := 0
	say := func(host, what string, commands ...string) {
		step++
		fmt.Fprintf(w, "\n%d. On %s: %s\n", step, host, what)
		for _, c := range commands {
			fmt.Fprintf(w, "   %s\n", c)
		}
	}
	for _, p := range peers {
		if profile == Modern {
			say(p.Name, "stop etcd", disableScript)
		} else {
			var mv []string
			for _, m := range profile.peerManifests() {
				mv = append(mv, manifestDir+"/"+m)
			}
			say(p.Name, "stop etcd, kube-apiserver, kube-controller-manager and kube-scheduler, then wait until crictl lists none of them",
				"install -d -m 0700 "+manualDir+"/manifests",
				"mv "+strings.Join(mv, " ")+" "+manualDir+"/manifests/",
				`until [ -z "$(crictl ps -q --name '^(etcd|etcd-metrics|etcd-readyz|kube-apiserver|kube-controller-manager|kube-scheduler)$')" ]; do sleep 2; done`)
		}
		say(p.Name, "move etcd's data aside (within /var, never to /tmp)",
			"install -d -m 0700 "+manualDir, "mv "+etcdDataDir+" "+manualDir+"/etcd-data && install -d -m 0700 "+etcdDataDir)
	}
	say("your workstation", fmt.Sprintf("copy the backup to %s (its two files alone in the directory)", r.Name),
		fmt.Sprintf("scp -r %s core@%s:%s", v.Dir, orName(r.IP, r.Name), staged))
	commands := []string{"install -d -m 0700 " + manualDir,
		"[ ! -d " + etcdDataBackup + "/member ] || mv " + etcdDataBackup + "/member " + manualDir + "/etcd-backup-member"}
	if profile == Modern {
		commands = append(commands, disableScript)
	}
	commands = append(commands, restoreScript+" "+staged+" && install -d -m 0700 "+manualDir+"/state && date -u +%Y-%m-%dT%H:%M:%SZ >"+manualDir+"/"+restoredMarker)
	say(r.Name, "keep the data of an earlier restore, which the script would delete, and restore (the last command also records that this host restored, for the rest of the restore)", commands...)
	if profile == Legacy {
		var all []string
		for _, h := range append([]Host{*r}, peers...) {
			all = append(all, h.Name)
		}
		say(strings.Join(all, ", "), "restart the kubelet", "systemctl restart kubelet")
	}
	up := &Prepared{Hosts: append([]Host{*r}, peers...)}
	fmt.Fprintf(w, "\nIf `%s restore prepare` pre-positioned a backup on the hosts while the cluster was healthy, each host that is up needs one command instead of the steps above, in this order:\n", o.Command)
	for _, c := range up.Commands(r.Name) {
		fmt.Fprintf(w, "   on %s: %s\n", c.Node, c.Command)
	}
	again := o.Command + " restore " + v.Dir
	for _, n := range o.Lost {
		again += " --lost-node " + n
	}
	fmt.Fprintf(w, "\nThen, once the API answers, run `%s` again: it finds the restore on %s and finishes it (the nodes' certificate requests approved, ", again, r.Name)
	if len(o.Lost) > 0 {
		fmt.Fprintf(w, "the Machines of %s replaced, ", strings.Join(o.Lost, ", "))
	}
	fmt.Fprint(w, "the quorum guard lifted and etcd redeployed until every control-plane node has a member, the guard put back")
	if profile == Legacy {
		fmt.Fprint(w, ", the kube-apiserver, kube-controller-manager and kube-scheduler redeployed")
	}
	fmt.Fprintln(w, ").")
	return nil
}

func orName(ip, name string) string {
	if ip != "" {
		return ip
	}
	return name
}
