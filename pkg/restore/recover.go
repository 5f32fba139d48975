package restore

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	configv1 "github.com/openshift/api/config/v1"
	operatorv1 "github.com/openshift/api/operator/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/oc-recover/oc-recover/pkg/csr"
	"github.com/oc-recover/oc-recover/pkg/debugnode"
	"github.com/oc-recover/oc-recover/pkg/member"
	"github.com/oc-recover/oc-recover/pkg/openshift"
	"github.com/oc-recover/oc-recover/pkg/redeploy"
)

// RecordAnnotation on etcd/cluster is phase C's record in the restored
// cluster: a re-run resumes from it.
const RecordAnnotation = "oc-recover/restore"

// Record is what phase C knows of a restore, kept in RecordAnnotation.
type Record struct {
	ID           string   `json:"id"`
	Backup       string   `json:"backup"`
	Profile      Profile  `json:"profile"`
	RecoveryNode string   `json:"recoveryNode"`
	ControlPlane []string `json:"controlPlane"`
	Lost         []string `json:"lost,omitempty"`
	// Dir is the hosts' directory of the restore: StateDir/ID when empty;
	// the prepared or the console procedure's directory for a restore
	// done from the consoles.
	Dir         string    `json:"dir,omitempty"`
	NetworkType string    `json:"networkType,omitempty"`
	FiredAt     time.Time `json:"firedAt"`
	// OverrideSet: phase C lifted the quorum guard, and OriginalOverrides
	// is the restored spec.unsupportedConfigOverrides to put back.
	OverrideSet       bool            `json:"overrideSet,omitempty"`
	OriginalOverrides json.RawMessage `json:"originalOverrides,omitempty"`
	// Reasons are the forceRedeploymentReasons used, by operator, Floors
	// the latest revision before each (a rollout is done once every node
	// runs a newer one), and Done the rollouts that finished.
	Reasons map[string]string `json:"reasons,omitempty"`
	Floors  map[string]int32  `json:"floors,omitempty"`
	Done    map[string]bool   `json:"done,omitempty"`
	// Swaps replace the lost nodes' Machines, one at a time, and NewNodes
	// are the nodes that replaced them, by lost node.
	Swaps    []member.MachineSwap `json:"machineSwaps,omitempty"`
	NewNodes map[string]string    `json:"newNodes,omitempty"`
}

// NewRecord is the record of a plan fired at firedAt.
func NewRecord(p *Plan, firedAt time.Time) *Record {
	r := &Record{ID: p.ID, Backup: p.Backup.Dir, Profile: p.Profile, RecoveryNode: p.Recovery.Name, Lost: p.LostNodes, NetworkType: p.NetworkType, FiredAt: firedAt.UTC(),
		Reasons: map[string]string{}, Floors: map[string]int32{}, Done: map[string]bool{}, NewNodes: map[string]string{}}
	for _, h := range append([]Host{p.Recovery}, p.Peers...) {
		r.ControlPlane = append(r.ControlPlane, h.Name)
	}
	sort.Strings(r.ControlPlane)
	return r
}

func (r *Record) dir() string {
	if r.Dir != "" {
		return r.Dir
	}
	return StateDir + "/" + r.ID
}

// Members are the control-plane nodes that have an etcd member once the
// restore is done: those that took part, and those that replaced the lost.
func (r *Record) Members() []string {
	out := append([]string(nil), r.ControlPlane...)
	for _, n := range r.NewNodes {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func (r *Record) unit() string { return "oc-recover-restore-" + r.ID }

// ReadRecord reads the record of a restore in phase C, nil if none.
func ReadRecord(ctx context.Context, c Clients) (*Record, error) {
	e, err := c.Operator.OperatorV1().Etcds().Get(ctx, "cluster", metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("read etcd/cluster: %w", err)
	}
	raw, ok := e.Annotations[RecordAnnotation]
	if !ok {
		return nil, nil
	}
	r := &Record{}
	if err := json.Unmarshal([]byte(raw), r); err != nil {
		return nil, fmt.Errorf("etcd/cluster annotation %s is not a restore record (%v)", RecordAnnotation, err)
	}
	if r.Reasons == nil {
		r.Reasons = map[string]string{}
	}
	if r.Done == nil {
		r.Done = map[string]bool{}
	}
	if r.Floors == nil {
		r.Floors = map[string]int32{}
	}
	if r.NewNodes == nil {
		r.NewNodes = map[string]string{}
	}
	return r, nil
}

// WriteRecord keeps r in the cluster.
func WriteRecord(ctx context.Context, c Clients, r *Record) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return patchEtcd(ctx, c, map[string]any{"metadata": map[string]any{"annotations": map[string]any{RecordAnnotation: string(data)}}})
}

func patchEtcd(ctx context.Context, c Clients, patch map[string]any) error {
	data, err := json.Marshal(patch)
	if err != nil {
		return err
	}
	if _, err := c.Operator.OperatorV1().Etcds().Patch(ctx, "cluster", types.MergePatchType, data, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("merge-patch etcd/cluster %s: %w", data, err)
	}
	return nil
}

// RecoverOptions tune phase C.
type RecoverOptions struct {
	// StartRunner starts debug pods for the clean-up on the hosts.
	StartRunner debugnode.StartFunc
	// StablePeriod is how long every cluster operator must stay
	// Available, not Progressing and not Degraded.
	StablePeriod time.Duration
}

// Recovered is what phase C did and left.
type Recovered struct {
	ID string `json:"id"`
	// Kept is what the restore moved aside and kept, by host.
	Kept map[string]string `json:"kept"`
	// Replaced are the nodes that replaced the lost ones, by lost node.
	Replaced map[string]string `json:"replaced,omitempty"`
	Advice   []string          `json:"advice"`
}

// Recover carries out phase C on the restored cluster from its record:
// the quorum guard lifted, etcd redeployed until every control-plane
// host has a member again, the guard put back as the backup had it, the
// legacy profile's kube-apiserver, kube-controller-manager and
// kube-scheduler redeployed, the wait for stable operators, and the
// clean-up. Every step is skipped when the record says it is done, so a
// re-run resumes.
func Recover(ctx context.Context, c Clients, rec *Record, o RecoverOptions, ev Events) (*Recovered, error) {
	// The kubelets restarted against the restored API: their CSRs are
	// approved as they come, throughout.
	csrCtx, stopCSRs := context.WithCancel(ctx)
	csrsDone := make(chan struct{})
	go func() {
		defer close(csrsDone)
		approveCSRs(csrCtx, c, ev)
	}()
	defer func() {
		stopCSRs()
		<-csrsDone
	}()
	if err := replaceLost(ctx, c, rec, ev); err != nil {
		return nil, err
	}
	if err := liftGuard(ctx, c, rec, ev); err != nil {
		return nil, err
	}
	if err := redeployOperator(ctx, c, rec, "etcd", ev); err != nil {
		return nil, err
	}
	if err := waitMembers(ctx, c, len(rec.ControlPlane)+len(rec.Lost), ev); err != nil {
		return nil, err
	}
	if err := putGuardBack(ctx, c, rec, ev); err != nil {
		return nil, err
	}
	if rec.Profile == Legacy {
		for _, op := range redeploy.ControlPlane[1:] {
			if err := redeployOperator(ctx, c, rec, op, ev); err != nil {
				return nil, err
			}
		}
	}
	if err := waitStable(ctx, c, o.StablePeriod, ev); err != nil {
		return nil, err
	}
	return cleanUp(ctx, c, rec, o, ev)
}

// approveCSRs approves the CSRs that validate, in rounds until ctx ends,
// as `csr approve --watch` does. Its post-outage rule takes a node whose
// kubelet this run sees silent as not Ready: the restored Ready conditions
// are those of the backup's time. The restore's confirmation covers them.
func approveCSRs(ctx context.Context, c Clients, ev Events) {
	rounds := &csr.Rounds{Approver: &csr.Approver{Kube: c.Kube, Machine: c.Machine}, Interval: 5 * time.Second, PostOutage: &csr.PostOutage{}}
	_ = rounds.Until(ctx, func(ctx context.Context, snap *csr.Snapshot, ds []csr.Decision) (bool, error) {
		for _, d := range ds {
			if d.Outcome == csr.Approved {
				ev.say("approved CSR %s of %s (%s)", d.Name, d.Node, d.Reason)
			}
		}
		return false, nil
	})
}

func liftGuard(ctx context.Context, c Clients, rec *Record, ev Events) error {
	if rec.Done["etcd"] || rec.OverrideSet {
		return nil
	}
	e, err := c.Operator.OperatorV1().Etcds().Get(ctx, "cluster", metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("read etcd/cluster: %w", err)
	}
	rec.OriginalOverrides = json.RawMessage("null")
	if raw := e.Spec.UnsupportedConfigOverrides.Raw; len(raw) > 0 {
		rec.OriginalOverrides = append(json.RawMessage(nil), raw...)
	}
	rec.OverrideSet = true
	if err := WriteRecord(ctx, c, rec); err != nil {
		return err
	}
	if err := patchEtcd(ctx, c, openshift.LiftQuorumGuardPatch()); err != nil {
		return err
	}
	ev.say("etcd/cluster: quorum guard lifted (spec.unsupportedConfigOverrides.%s=true) until every member is back", openshift.QuorumGuardOverride)
	return nil
}

func putGuardBack(ctx context.Context, c Clients, rec *Record, ev Events) error {
	if !rec.OverrideSet {
		return nil
	}
	patch, err := openshift.PutBackOverridesPatch(rec.OriginalOverrides)
	if err != nil {
		return err
	}
	if err := patchEtcd(ctx, c, patch); err != nil {
		return err
	}
	ev.say("etcd/cluster: spec.unsupportedConfigOverrides put back to %s", string(rec.OriginalOverrides))
	rec.OverrideSet, rec.OriginalOverrides = false, nil
	return WriteRecord(ctx, c, rec)
}

// redeployOperator forces a new revision of op with the record's reason
// and waits until every control-plane node runs it. The reason is recorded
// before it is written, so a re-run waits for the same rollout.
func redeployOperator(ctx context.Context, c Clients, rec *Record, op string, ev Events) error {
	if rec.Done[op] {
		return nil
	}
	o, err := redeploy.For(c.Operator, op)
	if err != nil {
		return err
	}
	reason := rec.Reasons[op]
	if reason == "" {
		// The reason and the revision before it are recorded before the
		// reason is written: a re-run waits for this rollout, done or not.
		st, err := o.State(ctx)
		if err != nil {
			return err
		}
		reason = redeploy.ReasonPrefix + rec.ID
		rec.Reasons[op], rec.Floors[op] = reason, st.Latest
		if err := WriteRecord(ctx, c, rec); err != nil {
			return err
		}
	}
	st, err := o.State(ctx)
	if err != nil {
		return err
	}
	if st.Reason != reason {
		if err := o.Force(ctx, reason); err != nil {
			return err
		}
		ev.say("%s: forced a new revision (%s)", o.Object, reason)
	}
	if _, err := o.WaitPast(ctx, rec.Floors[op], func(s redeploy.State) { ev.say("%s: %s (latest revision %d)", op, s.Summary(), s.Latest) }); err != nil {
		return err
	}
	rec.Done[op] = true
	return WriteRecord(ctx, c, rec)
}

// waitMembers waits until the etcd operator reports a healthy member on
// every control-plane host.
func waitMembers(ctx context.Context, c Clients, n int, ev Events) error {
	want := fmt.Sprintf("%d members are available", n)
	last := ""
	for {
		e, err := c.Operator.OperatorV1().Etcds().Get(ctx, "cluster", metav1.GetOptions{})
		if err == nil {
			for _, cond := range e.Status.Conditions {
				if cond.Type != "EtcdMembersAvailable" {
					continue
				}
				if cond.Message != last {
					last = cond.Message
					ev.say("etcd: %s", cond.Message)
				}
				if cond.Status == operatorv1.ConditionTrue && strings.HasPrefix(cond.Message, want) {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("etcd did not have a member on every control-plane host (%s) before the time ran out (--timeout); it says %q: run this command again to keep waiting", want, last)
		case <-time.After(time.Second):
		}
	}
}

// waitStable waits until every cluster operator has been Available, not
// Progressing and not Degraded for period, as `oc adm wait-for-stable-cluster`
// does.
func waitStable(ctx context.Context, c Clients, period time.Duration, ev Events) error {
	var since time.Time
	last := ""
	for {
		unstable, err := unstableOperators(ctx, c)
		switch {
		case err != nil:
			since = time.Time{}
		case len(unstable) == 0:
			if since.IsZero() {
				since = time.Now()
				ev.say("every cluster operator is stable; waiting %s to be sure", period)
			}
			if time.Since(since) >= period {
				return nil
			}
		default:
			since = time.Time{}
			if s := strings.Join(unstable, ", "); s != last {
				last = s
				ev.say("cluster operators not stable yet: %s", s)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the cluster operators were not stable for %s before the time ran out (--timeout): %s; run this command again to keep waiting", period, last)
		case <-time.After(2 * time.Second):
		}
	}
}

func unstableOperators(ctx context.Context, c Clients) ([]string, error) {
	list, err := c.Config.ConfigV1().ClusterOperators().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	var unstable []string
	for _, co := range list.Items {
		want := map[configv1.ClusterStatusConditionType]configv1.ConditionStatus{
			configv1.OperatorAvailable: configv1.ConditionTrue, configv1.OperatorProgressing: configv1.ConditionFalse, configv1.OperatorDegraded: configv1.ConditionFalse}
		for _, cond := range co.Status.Conditions {
			if w, ok := want[cond.Type]; ok && cond.Status == w {
				delete(want, cond.Type)
			}
		}
		if len(want) > 0 {
			unstable = append(unstable, co.Name)
		}
	}
	sort.Strings(unstable)
	return unstable, nil
}

// cleanUp stops the units and marks the hosts' restore directories
// finished, removes the debug namespaces that came back with the snapshot,
// and the record. Everything moved aside stays, and is named.
func cleanUp(ctx context.Context, c Clients, rec *Record, o RecoverOptions, ev Events) (*Recovered, error) {
	out := &Recovered{ID: rec.ID, Kept: map[string]string{}, Replaced: rec.NewNodes}
	for _, node := range rec.ControlPlane {
		r, err := o.StartRunner(ctx, node)
		if err != nil {
			return nil, fmt.Errorf("clean up on %s: %w", node, err)
		}
		var sizes strings.Builder
		script := fmt.Sprintf("systemctl stop %[1]s 2>/dev/null || true; systemctl reset-failed %[1]s 2>/dev/null || true; install -d -m 0700 %[2]s/state && date -u +%%Y-%%m-%%dT%%H:%%M:%%SZ >%[2]s/state/finished && du -sh %[2]s | cut -f1", rec.unit(), rec.dir())
		code, err := r.Host(ctx, script, nil, &sizes, io.Discard)
		_ = r.Close(context.WithoutCancel(ctx))
		if err != nil || code != 0 {
			return nil, fmt.Errorf("clean up on %s: exit %d %v", node, code, err)
		}
		out.Kept[node] = rec.dir() + " (" + strings.TrimSpace(sizes.String()) + ")"
	}
	ns, err := debugnode.Leftovers(ctx, c.Kube)
	if err != nil {
		return nil, err
	}
	for _, n := range ns {
		if n.CreationTimestamp.Time.Before(rec.FiredAt) {
			if err := debugnode.DeleteNamespace(ctx, c.Kube, n.Name); err != nil {
				return nil, err
			}
			ev.say("removed debug namespace %s, which came back with the snapshot", n.Name)
		}
	}
	if err := patchEtcd(ctx, c, map[string]any{"metadata": map[string]any{"annotations": map[string]any{RecordAnnotation: nil}}}); err != nil {
		return nil, err
	}
	out.Advice = []string{
		"Workloads that cache API data (operators, controllers) may need a restart to see the restored state.",
		"Users who logged in after the backup log in again; objects created after it are gone, persistent volumes keep their newer data (\"Restoring to a previous cluster state\", Issues and workarounds for restoring a persistent storage state).",
		"Machines and cloud instances created or deleted after the backup are not reconciled: compare `oc get machines` and `oc get nodes`.",
	}
	if rec.Profile == Legacy && rec.NetworkType == "OVNKubernetes" {
		out.Advice = append([]string{"NOT AUTOMATED YET: reset OVN-Kubernetes now, as \"Restoring to a previous cluster state\" does for this release (its OVN steps, after the CSRs are approved)."}, out.Advice...)
	}
	return out, nil
}
