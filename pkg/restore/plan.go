package restore

import (
	"fmt"
	"strings"
	"time"

	"github.com/oc-recover/oc-recover/pkg/backup"
)

// Plan is a restore as pre-flight found it possible: the backup, the
// hosts and what each step does, with its host commands.
type Plan struct {
	// ID names the restore: its directory on every host and its units.
	ID      string  `json:"id"`
	Profile Profile `json:"profile"`
	// Release is the OpenShift release the cluster runs.
	Release   string     `json:"release"`
	ClusterID string     `json:"clusterID"`
	Backup    BackupInfo `json:"backup"`
	// Identity says why the tool's credentials outlive the restore.
	Identity  string   `json:"identity"`
	Recovery  Host     `json:"recoveryNode"`
	Peers     []Host   `json:"peers,omitempty"`
	LostNodes []string `json:"lostNodes,omitempty"`
	// PeerStopTimeout is how long the recovery host waits for etcd to stop
	// on every peer (--peer-stop-timeout); the hosts' other deadlines
	// follow from it.
	PeerStopTimeout time.Duration `json:"peerStopTimeout"`
	NetworkType     string        `json:"networkType,omitempty"`
	Hosts           []HostProbe   `json:"hosts"`
	// Forced lists what --force let through.
	Forced   []string `json:"forced,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
	Steps    []Step   `json:"steps"`
}

// Phases of a restore.
const (
	// PhaseA runs while the API is up, through debug pods.
	PhaseA = "A"
	// PhaseB runs on the hosts while the API is down, in transient systemd
	// units armed in phase A.
	PhaseB = "B"
	// PhaseC runs through the API once the restored cluster answers.
	PhaseC = "C"
)

// PhaseTitles say what each phase is.
var PhaseTitles = map[string]string{
	PhaseA: "Phase A, while the API is up (debug pods)",
	PhaseB: "Phase B, without the API (host units armed in phase A)",
	PhaseC: "Phase C, once the restored API answers",
}

// Step is one step of the plan.
type Step struct {
	Phase string `json:"phase"`
	// Node is the host it runs on ("" for the API).
	Node   string `json:"node,omitempty"`
	Action string `json:"action"`
	// Command is the exact host command, or the API object changed.
	Command string `json:"command,omitempty"`
}

// dir is the restore's directory on every host.
func (p *Plan) dir() string { return StateDir + "/" + p.ID }

// unit is the restore's transient systemd unit on every host.
func (p *Plan) unit() string { return "oc-recover-restore-" + p.ID }

// steps lays the restore out for the profile, from what pre-flight found
// on the hosts.
func (p *Plan) steps() []Step {
	var s []Step
	add := func(phase, node, action, command string) {
		s = append(s, Step{Phase: phase, Node: node, Action: action, Command: command})
	}
	d, r := p.dir(), p.Recovery.Name
	all := append([]Host{p.Recovery}, p.Peers...)

	for _, h := range all {
		what := "write the host runner and this host's plan into a fresh directory (on /var: a restore does not rewind it, a reboot keeps it), and record the etcd cluster ID its member serves"
		if h.Name == r {
			what += fmt.Sprintf("; upload %s and %s beside them (tar over exec, sha256 on both ends), so that cluster-restore.sh finds exactly this pair", p.Backup.Snapshot, p.Backup.Resources)
		}
		add(PhaseA, h.Name, what, "install -d -m 0700 "+d+" "+d+"/state")
	}
	add(PhaseA, "", "record the restore in the live API; the restored data does not hold it, so its absence later proves the restore is served", "ConfigMap "+SentinelNamespace+"/"+p.sentinel())
	for _, h := range all {
		role := "peer " + r
		if h.Name == r {
			role = "recovery"
		}
		add(PhaseA, h.Name, "arm the transient unit that runs this host's part, the recovery host first; each is verified running, and should one host not arm, those armed are disarmed (run.sh abort) and left as they were",
			fmt.Sprintf("systemd-run --unit=%s --remain-after-exit /bin/bash %s/run.sh %s", p.unit(), d, role))
	}

	for _, h := range p.Peers {
		p.peerSteps(add, h)
	}
	p.recoverySteps(add)

	add(PhaseC, "", "confirm the restored data is served (the record of phase A is gone) and record phase C, so that a re-run resumes it", "etcd/cluster annotation "+RecordAnnotation)
	if p.Profile == Legacy && p.NetworkType == "OVNKubernetes" {
		add(PhaseC, "", "NOT AUTOMATED YET, by hand once the command ends: reset OVN-Kubernetes as \"Restoring to a previous cluster state\" does for this release", "")
	}
	for _, n := range p.LostNodes {
		add(PhaseC, "", "replace lost node "+n+"'s Machine, as member replace does: a copy saved in the record, the Machine deleted, the copy created under the next free name, and its node waited for until Ready", "machine -n openshift-machine-api (the Machine of node "+n+")")
	}
	add(PhaseC, "", "lift the quorum guard so that the operator can add the other members; the restored value of spec.unsupportedConfigOverrides is kept to be put back",
		"etcd/cluster spec.unsupportedConfigOverrides.useUnsupportedUnsafeNonHANonProductionUnstableEtcd=true")
	add(PhaseC, "", "force a new etcd revision and wait until every control-plane node runs it", "etcd/cluster spec.forceRedeploymentReason=recovery-"+p.ID)
	add(PhaseC, "", "wait until every control-plane node has a healthy member, then put the quorum guard back exactly as the backup had it", "etcd/cluster spec.unsupportedConfigOverrides")
	if p.Profile == Legacy {
		for _, op := range []string{"kubeapiserver", "kubecontrollermanager", "kubescheduler"} {
			add(PhaseC, "", "force a new "+op+" revision and wait until every control-plane node runs it", op+"/cluster spec.forceRedeploymentReason=recovery-"+p.ID)
		}
	}
	add(PhaseC, "", "wait until every cluster operator has been Available, not Progressing and not Degraded for --minimum-stable-period", "")
	add(PhaseC, "", "stop the units, remove the debug namespaces that came back with the snapshot and the record; keep everything moved aside, and say where", "")
	return s
}

// peerSteps are a peer's part of phase B.
func (p *Plan) peerSteps(add func(phase, node, action, command string), h Host) {
	d := p.dir()
	if p.Profile == Modern {
		add(PhaseB, h.Name, "stop etcd", disableScript)
	} else {
		var mv []string
		for _, m := range p.Profile.peerManifests() {
			mv = append(mv, fmt.Sprintf("mv %s/%s %s/manifests/", manifestDir, m, d))
		}
		add(PhaseB, h.Name, "stop etcd, kube-apiserver, kube-controller-manager and kube-scheduler, and wait for their containers to stop", strings.Join(mv, "; "))
	}
	add(PhaseB, h.Name, "move etcd's data aside", p.moveData(h.Name))
	_, _, peer := runnerDeadlines(p.PeerStopTimeout)
	add(PhaseB, h.Name, fmt.Sprintf("wait until %s serves a new etcd cluster; if it still serves the old one after %s, put everything back (the cluster stays as it was)", p.Recovery.Name, time.Duration(peer)*time.Second), "")
	if p.Profile == Legacy {
		add(PhaseB, h.Name, "restart the kubelet", "systemctl restart kubelet")
	}
}

// recoverySteps are the recovery host's part of phase B.
func (p *Plan) recoverySteps(add func(phase, node, action, command string)) {
	d, r := p.dir(), p.Recovery.Name
	add(PhaseB, r, fmt.Sprintf("wait until etcd has stopped on every other control-plane host; if it has not after %s (--peer-stop-timeout), change nothing here", p.PeerStopTimeout), "")
	for _, h := range p.Hosts {
		if h.Node == r && h.EtcdBackupMember >= 0 {
			add(PhaseB, r, fmt.Sprintf("move aside the data of an earlier restore (%s), which cluster-restore.sh would delete", backup.HumanBytes(h.EtcdBackupMember)),
				"mv "+etcdDataBackup+"/member "+d+"/prior/etcd-backup-member")
		}
	}
	if p.Profile == Modern {
		add(PhaseB, r, "stop etcd", disableScript)
	} else {
		add(PhaseB, r, "stop etcd", fmt.Sprintf("mv %s/etcd-pod.yaml %s/", manifestDir, manifestsStopped))
	}
	for _, h := range p.Hosts {
		if h.Node != r {
			continue
		}
		for _, e := range h.etcdExtras() {
			add(PhaseB, r, "move aside what "+etcdDataDir+" holds besides etcd's data, which the restore refuses", fmt.Sprintf("install -d -m 0700 %s/prior && mv %s/%s %s/prior/", d, etcdDataDir, e, d))
		}
	}
	what := "restore etcd from the snapshot as a one-member cluster with a new cluster ID"
	if p.Profile == Legacy {
		what += ", and start the backup's kube-apiserver, kube-controller-manager and kube-scheduler pods"
	}
	add(PhaseB, r, what, restoreScript+" "+d+"/backup")
	if p.Profile == Legacy {
		add(PhaseB, r, "restart the kubelet", "systemctl restart kubelet")
	}
	add(PhaseB, r, "move the pre-restore data the script set aside into the restore's directory, so that a later restore cannot delete it", "mv "+etcdDataBackup+"/member "+d+"/pre-restore-member")
	add(PhaseB, r, "wait until etcd and the kube-apiserver answer", "")
}

// moveData is how a host's etcd data is moved aside: renamed into the
// restore's directory, or, when /var/lib/etcd is a file system of its own,
// renamed within it.
func (p *Plan) moveData(node string) string {
	for _, h := range p.Hosts {
		if h.Node == node && h.EtcdMountPoint {
			return fmt.Sprintf("mv %s/member %s/.oc-recover-%s-member", etcdDataDir, etcdDataDir, p.ID)
		}
	}
	return fmt.Sprintf("mv %s %s/etcd-data && install -d -m 0700 %s", etcdDataDir, p.dir(), etcdDataDir)
}

// sentinel names the ConfigMap that records the restore in the live API
// (object names are lower case; the ID's T and Z are not).
func (p *Plan) sentinel() string { return SentinelPrefix + strings.ToLower(p.ID) }
