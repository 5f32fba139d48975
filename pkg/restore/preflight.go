package restore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	configv1 "github.com/openshift/api/config/v1"
	configclient "github.com/openshift/client-go/config/clientset/versioned"
	machineclient "github.com/openshift/client-go/machine/clientset/versioned"
	operatorclient "github.com/openshift/client-go/operator/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/oc-recover/oc-recover/pkg/backup"
	"github.com/oc-recover/oc-recover/pkg/debugnode"
	"github.com/oc-recover/oc-recover/pkg/era"
	"github.com/oc-recover/oc-recover/pkg/exitcode"
	"github.com/oc-recover/oc-recover/pkg/openshift"
)

// Clients are the API clients a restore reads.
type Clients struct {
	Kube     kubernetes.Interface
	Config   configclient.Interface
	Operator operatorclient.Interface
	// Machine may be nil (no Machine API); phase C's CSR rounds read it.
	Machine machineclient.Interface
	// REST is the configuration the tool authenticates with.
	REST *rest.Config
}

// Options are what the user asked of a restore.
type Options struct {
	// Dir is the backup directory.
	Dir string
	// RecoveryNode is --recovery-node; empty picks one.
	RecoveryNode string
	// LostNodes are --lost-node: control-plane hosts that are gone and
	// stay off; nothing is staged on them.
	LostNodes []string
	// Force is --force: restore a backup of another z-stream of the same
	// minor release, a possibly dirty one, or during an update.
	Force bool
	// InCluster: the tool runs in a pod of a cluster (KUBERNETES_SERVICE_HOST).
	InCluster bool
	// Command is how the user runs the plugin ("oc recover").
	Command string
	Now     time.Time
	// PeerStopTimeout is --peer-stop-timeout (zero: the default).
	PeerStopTimeout time.Duration
	// StartRunner starts a debug pod on a node, for the host probes.
	StartRunner debugnode.StartFunc
}

// refuse is a refusal: nothing was changed.
func refuse(format string, args ...any) error {
	return fmt.Errorf("refusing to restore, nothing was changed: "+format, args...)
}

// headroom is the free space kept on /var beyond what a restore writes.
const headroom = 1 << 30

// Preflight reads the backup, the cluster and every control-plane host,
// and returns the plan of the restore, or the reason it is refused. It
// changes nothing; its debug pods are removed on every path.
func Preflight(ctx context.Context, c Clients, o Options) (*Plan, error) {
	if o.InCluster {
		return nil, refuse("%s runs inside a cluster (KUBERNETES_SERVICE_HOST is set): a restore stops the API and restarts the control plane, and would stop this pod with it. Run it from a workstation outside the cluster", o.Command+" restore")
	}
	if err := backup.RequireClusterAdmin(ctx, c.Kube, "a restore"); err != nil {
		return nil, err
	}
	if err := noRestoreUnderWay(ctx, c, o.Command); err != nil {
		return nil, err
	}
	rel, err := era.RequireSupported(ctx, era.Clients{Kube: c.Kube, OpenShiftConfig: c.Config})
	if err != nil {
		return nil, err
	}
	cv, err := c.Config.ConfigV1().ClusterVersions().Get(ctx, "version", metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("read clusterversion/version: %w", err)
	}
	p := &Plan{ID: newID(o.Now), Profile: ProfileFor(rel), Release: rel.Version, ClusterID: string(cv.Spec.ClusterID), LostNodes: append([]string(nil), o.LostNodes...), PeerStopTimeout: o.PeerStopTimeout}
	if p.PeerStopTimeout <= 0 {
		p.PeerStopTimeout = DefaultPeerStopTimeout
	}
	sort.Strings(p.LostNodes)

	id, err := IdentityOf(c.REST)
	if err != nil {
		return nil, err
	}
	v, err := backup.Verify(o.Dir, extraKeys(id)...)
	if err != nil {
		return nil, refuse("backup %s is not usable: %v", o.Dir, err)
	}
	if err := p.judgeBackup(v, rel, o); err != nil {
		return nil, err
	}
	if err := p.judgeCluster(ctx, c, cv, o); err != nil {
		return nil, err
	}
	var liveCA []byte
	if v.Snapshot.Cluster.ClientCAEncrypted {
		if cm, err := c.Kube.CoreV1().ConfigMaps("openshift-kube-apiserver").Get(ctx, "client-ca", metav1.GetOptions{}); err == nil {
			liveCA = []byte(cm.Data["ca-bundle.crt"])
		}
	}
	_, tokenKept := v.Snapshot.Values[id.OAuthTokenKey()]
	s := IdentitySurvives(id, v.Snapshot.Cluster.ClientCA, liveCA, v.Snapshot.Cluster.ClientCAEncrypted, tokenKept, p.Backup.TakenAt, o.Now)
	if !s.OK {
		return nil, refuse("the identity this command uses would not survive the restore, and it needs the API afterwards: %s", s.Why)
	}
	p.Identity = s.Why

	if err := p.chooseHosts(ctx, c, o); err != nil {
		return nil, err
	}
	if err := p.probe(ctx, o); err != nil {
		return nil, err
	}
	p.Steps = p.steps()
	return p, nil
}

// extraKeys are the snapshot keys the identity check reads.
func extraKeys(id Identity) []string {
	if k := id.OAuthTokenKey(); k != "" {
		return []string{k}
	}
	return nil
}

// newID names a restore: its start time and a few random digits.
func newID(now time.Time) string {
	b := make([]byte, 2)
	_, _ = rand.Read(b)
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b)
}

// judgeBackup refuses a backup this cluster cannot take: another
// cluster's (never), another release's (another z-stream with --force), a
// possibly dirty one (--force). The snapshot's own clusterversion decides,
// so a directory that cluster-backup.sh wrote alone is judged too.
func (p *Plan) judgeBackup(v *backup.Verification, rel *era.Release, o Options) error {
	p.Backup = backupInfo(v)
	switch {
	case p.Backup.ClusterID == "":
		return refuse("cannot tell which cluster backup %s is of: its snapshot holds no clusterversions/version and it has no %s", o.Dir, backup.ManifestName)
	case p.Backup.ClusterID != p.ClusterID:
		return refuse("backup %s is of cluster %s (%s), and this is cluster %s: restoring another cluster's etcd would replace this cluster with that one. There is no override", o.Dir, p.Backup.ClusterID, p.Backup.IdentityFrom, p.ClusterID)
	}
	if p.Backup.Version != rel.Version {
		taken, ok := era.Parse(p.Backup.Version)
		switch {
		case !ok || taken.Major != rel.Major || taken.Minor != rel.Minor:
			return refuse("backup %s was taken on OpenShift %s (%s) and the cluster runs %s: a restore puts back the static pods and data of the backup's release, and across minor releases their resources and storage differ. Restore a backup taken on %s", o.Dir, p.Backup.Version, p.Backup.IdentityFrom, rel.Version, rel.Version)
		case !o.Force:
			return refuse("backup %s was taken on OpenShift %s (%s) and the cluster runs %s: OpenShift restores a backup of the same z-stream release (Backup and restore, \"Restoring to a previous cluster state\"). Restore a backup taken on %s (`%s backup list %s`), or pass --force to restore this one anyway", o.Dir, p.Backup.Version, p.Backup.IdentityFrom, rel.Version, rel.Version, o.Command, filepath.Dir(filepath.Clean(o.Dir)))
		}
		p.Forced = append(p.Forced, fmt.Sprintf("backup of OpenShift %s restored on %s", p.Backup.Version, rel.Version))
	}
	if err := v.RefuseDirty(o.Force, o.Command); err != nil {
		return refuse("%v", err)
	}
	if v.Dirty {
		p.Forced = append(p.Forced, "possibly dirty backup (taken during a rollout)")
	}
	if v.Snapshot.Cluster.Updating {
		p.Warnings = append(p.Warnings, fmt.Sprintf("the backup was taken while the cluster was updating to %s: the restored cluster resumes that update", p.Backup.Version))
	}
	if r := v.Resources; !r.FirstExpiry.IsZero() && r.FirstExpiry.Before(o.Now) {
		p.Warnings = append(p.Warnings, fmt.Sprintf("certificates in the backup have expired since (%s, %s): the restored cluster regenerates them, and node CSRs wait for approval", r.FirstExpiring, r.FirstExpiry.Format(time.RFC3339)))
	}
	if o := v.Snapshot.Cluster.EtcdOverrides; len(o) > 0 {
		p.Warnings = append(p.Warnings, fmt.Sprintf("the backup's etcd/cluster has unsupportedConfigOverrides %s: they come back with it, and are put back as they are after the restore", o))
	}
	return nil
}

// BackupInfo is the backup a plan restores.
type BackupInfo struct {
	Dir       string    `json:"dir"`
	Snapshot  string    `json:"snapshot"`
	Resources string    `json:"resources"`
	Size      int64     `json:"size"`
	DBSize    int64     `json:"dbSize"`
	Revision  int64     `json:"revision"`
	TakenAt   time.Time `json:"takenAt"`
	ClusterID string    `json:"clusterID"`
	Version   string    `json:"version"`
	// IdentityFrom says where ClusterID and Version were read.
	IdentityFrom string `json:"identityFrom"`
	// EncryptionType is the snapshot's etcd encryption.
	EncryptionType string `json:"encryptionType,omitempty"`
	// Revisions are the static pods' revisions in the archive.
	Revisions map[string]int `json:"revisions"`
	Files     []backup.File  `json:"files"`
}

func backupInfo(v *backup.Verification) BackupInfo {
	b := BackupInfo{Dir: v.Dir, DBSize: v.Snapshot.DBSize, Revision: v.Snapshot.Revision, ClusterID: v.ClusterID(), Version: v.Version(),
		EncryptionType: v.Snapshot.Cluster.EncryptionType, Revisions: v.Resources.Revisions, Files: v.Files}
	b.IdentityFrom = "its snapshot's clusterversions/version"
	if v.Snapshot.Cluster.ClusterID == "" {
		b.IdentityFrom = "its " + backup.ManifestName
	}
	for _, f := range v.Files {
		size := f.Size
		if fi, err := os.Stat(filepath.Join(v.Dir, f.Name)); err == nil {
			size = fi.Size()
			if f.Kind == backup.KindSnapshot && (v.Manifest == nil || v.Manifest.StartedAt.IsZero()) {
				b.TakenAt = fi.ModTime().UTC()
			}
		}
		b.Size += size
		if f.Kind == backup.KindSnapshot {
			b.Snapshot = f.Name
		} else {
			b.Resources = f.Name
		}
	}
	if v.Manifest != nil && !v.Manifest.StartedAt.IsZero() {
		b.TakenAt = v.Manifest.StartedAt.UTC()
	}
	return b
}

// judgeCluster refuses a cluster a restore would break further: one in the
// middle of an update (--force), or with a topology this restore is not
// for.
func (p *Plan) judgeCluster(ctx context.Context, c Clients, cv *configv1.ClusterVersion, o Options) error {
	for _, cond := range cv.Status.Conditions {
		if cond.Type == configv1.OperatorProgressing && cond.Status == configv1.ConditionTrue {
			if !o.Force {
				return refuse("the cluster is updating (clusterversion/version Progressing: %s): a restore during an update leaves operators of two releases. Wait for the update to finish, or pass --force", cond.Message)
			}
			p.Forced = append(p.Forced, "restore during an update: "+cond.Message)
		}
	}
	infra, err := c.Config.ConfigV1().Infrastructures().Get(ctx, "cluster", metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("read infrastructure/cluster: %w", err)
	}
	switch t := infra.Status.ControlPlaneTopology; t {
	case configv1.ExternalTopologyMode:
		return refuse("the control plane is hosted outside this cluster (controlPlaneTopology External): its etcd is restored where it is hosted, not here")
	case configv1.DualReplicaTopologyMode:
		return refuse("this is a two-node cluster with fencing (controlPlaneTopology DualReplica), which OpenShift restores with its own procedure and script (cluster-restore-tnf.sh); %s restore does not do it", o.Command)
	}
	if n, err := c.Config.ConfigV1().Networks().Get(ctx, "cluster", metav1.GetOptions{}); err == nil {
		p.NetworkType = n.Status.NetworkType
	}
	return nil
}

// Host is a control-plane host of the plan.
type Host struct {
	Name string `json:"name"`
	IP   string `json:"ip,omitempty"`
}

// chooseHosts picks the recovery host and checks the others: every
// control-plane node is Ready (a debug pod starts there, and its etcd is
// stopped by the restore), or named lost and not Ready (a lost host that
// still runs etcd with its old data would keep the old cluster going).
func (p *Plan) chooseHosts(ctx context.Context, c Clients, o Options) error {
	nodes, err := openshift.ControlPlaneNodes(ctx, c.Kube)
	if err != nil {
		return err
	}
	var names []string
	byName := map[string]*corev1.Node{}
	for i := range nodes {
		names = append(names, nodes[i].Name)
		byName[nodes[i].Name] = &nodes[i]
	}
	if len(nodes) == 0 {
		return refuse("no control-plane node found (labelled node-role.kubernetes.io/master or node-role.kubernetes.io/control-plane)")
	}
	lost := map[string]bool{}
	for _, n := range o.LostNodes {
		if byName[n] == nil {
			return exitcode.Usagef("--lost-node %s is not a control-plane node; the control-plane nodes are %s", n, strings.Join(names, ", "))
		}
		if openshift.NodeReady(byName[n]) {
			return refuse("--lost-node %s names a node that is Ready: a lost host must be off, or its etcd would keep the old cluster running beside the restored one. Leave it out of --lost-node so that the restore stops its etcd, or shut it down first", n)
		}
		lost[n] = true
	}
	if o.RecoveryNode != "" {
		n := byName[o.RecoveryNode]
		switch {
		case n == nil:
			return exitcode.Usagef("--recovery-node %s is not a control-plane node; the control-plane nodes are %s", o.RecoveryNode, strings.Join(names, ", "))
		case lost[o.RecoveryNode]:
			return exitcode.Usagef("--recovery-node %s is also named --lost-node", o.RecoveryNode)
		}
	}
	if err := refuseNotReady(nodes, lost, o.RecoveryNode); err != nil {
		return err
	}
	for _, n := range nodes {
		if lost[n.Name] {
			continue
		}
		if p.Recovery.Name == "" && (o.RecoveryNode == "" || o.RecoveryNode == n.Name) {
			p.Recovery = Host{Name: n.Name, IP: internalIP(&n)}
			continue
		}
		p.Peers = append(p.Peers, Host{Name: n.Name, IP: internalIP(&n)})
	}
	if p.Recovery.Name == "" {
		return refuse("no control-plane node is Ready to be the recovery host")
	}
	return nil
}

// refuseNotReady refuses a control-plane node that is neither Ready nor
// named lost, the recovery node first.
func refuseNotReady(nodes []corev1.Node, lost map[string]bool, recoveryNode string) error {
	var notReady []string
	for i := range nodes {
		n := &nodes[i]
		switch {
		case lost[n.Name] || openshift.NodeReady(n):
		case n.Name == recoveryNode:
			return refuse("recovery node %s is not Ready (%s): the backup is uploaded to it and the restore runs there. Choose a Ready control-plane node with --recovery-node", n.Name, readiness(n))
		default:
			notReady = append(notReady, fmt.Sprintf("%s (%s)", n.Name, readiness(n)))
		}
	}
	if len(notReady) > 0 {
		return refuse("control-plane node %s is not Ready: a restore stops etcd on every control-plane host through a debug pod there, and one it cannot reach would keep the old etcd running beside the restored one. Bring it back (after an outage, wait until `oc get nodes` shows it Ready), or if it is gone for good, shut it down and name it with --lost-node", strings.Join(notReady, ", "))
	}
	return nil
}

// readiness says how a node stands, for a refusal.
func readiness(n *corev1.Node) string {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return fmt.Sprintf("Ready=%s: %s", c.Status, c.Reason)
		}
	}
	return "no Ready condition"
}

func internalIP(n *corev1.Node) string {
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			return a.Address
		}
	}
	return ""
}

// probe looks at every host that takes part and refuses what it cannot
// use: the recovery host must hold the operator's restore files and the
// disk for the staged copy and the restored data; every host must have
// systemd-run, since its part runs while the API is down.
func (p *Plan) probe(ctx context.Context, o Options) error {
	if o.StartRunner == nil {
		return fmt.Errorf("no debug-node engine to look at the hosts")
	}
	nodes := []string{p.Recovery.Name}
	files := map[string][]string{p.Recovery.Name: p.Profile.recoveryFiles()}
	for _, h := range p.Peers {
		nodes = append(nodes, h.Name)
		files[h.Name] = p.Profile.peerFiles()
	}
	p.Hosts = probeHosts(ctx, o.StartRunner, nodes, files)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var problems []string
	for i, h := range p.Hosts {
		if h.Err != nil {
			problems = append(problems, fmt.Sprintf("%s: cannot look at the host: %v", h.Node, h.Err))
			continue
		}
		if m := h.missing(files[h.Node]); len(m) > 0 {
			problems = append(problems, fmt.Sprintf("%s lacks %s, which the etcd operator puts on a control-plane host with a running etcd pod", h.Node, strings.Join(m, ", ")))
		}
		if h.SystemdRun == "" {
			problems = append(problems, h.Node+" has no systemd-run, which runs the host's part while the API is down")
		}
		if len(h.Staged) > 0 {
			p.Warnings = append(p.Warnings, fmt.Sprintf("%s holds the files of earlier restores (%s/%s); they are kept", h.Node, StateDir, strings.Join(h.Staged, ", ")))
		}
		if h.ClockSkew > 2*time.Second || h.ClockSkew < -2*time.Second {
			p.Warnings = append(p.Warnings, fmt.Sprintf("%s's clock is %s off this machine's; the host units use relative timers, so it does not matter to the restore, but certificates judge time by it", h.Node, h.ClockSkew))
		}
		if i == 0 {
			need := p.Backup.Size + snapshotSize(p.Backup) + p.Backup.DBSize + headroom
			if h.VarAvail >= 0 && h.VarAvail < need {
				problems = append(problems, fmt.Sprintf("%s has %s free on /var and the restore needs %s there (the staged backup, the snapshot copy the restore pod reads, the restored database, and 1 GiB to spare); free space, or choose another host with --recovery-node",
					h.Node, backup.HumanBytes(h.VarAvail), backup.HumanBytes(need)))
			}
		}
	}
	if len(problems) > 0 {
		return refuse("%s", strings.Join(problems, "; "))
	}
	return nil
}

func snapshotSize(b BackupInfo) int64 {
	for _, f := range b.Files {
		if f.Kind == backup.KindSnapshot {
			if fi, err := os.Stat(filepath.Join(b.Dir, f.Name)); err == nil {
				return fi.Size()
			}
			return f.Size
		}
	}
	return 0
}

// noRestoreUnderWay refuses while the live API holds the sentinel of a
// restore that was fired and has not ended: its units may still run, and
// a second restore beside it would fight it.
func noRestoreUnderWay(ctx context.Context, c Clients, command string) error {
	list, err := c.Kube.CoreV1().ConfigMaps(SentinelNamespace).List(ctx, metav1.ListOptions{LabelSelector: debugnode.ManagedByLabel + "=" + debugnode.ManagedByValue})
	if err != nil {
		return fmt.Errorf("look for a restore under way in %s: %w", SentinelNamespace, err)
	}
	for _, cm := range list.Items {
		if !strings.HasPrefix(cm.Name, SentinelPrefix) {
			continue
		}
		return refuse("restore %s of %s, fired at %s onto %s, is under way or did not end (ConfigMap %s/%s): run `%s restore %s` to wait for it and finish it. Should its units have ended on every control-plane host (`systemctl is-active oc-recover-restore-%s` is not active, and run.log in %s/%s says rolled back or aborted), delete that ConfigMap first",
			cm.Data["id"], cm.Data["backup"], cm.Data["firedAt"], cm.Data["recoveryNode"], cm.Namespace, cm.Name, command, cm.Data["backup"], cm.Data["id"], StateDir, cm.Data["id"])
	}
	return nil
}
