package member

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	machinev1beta1 "github.com/openshift/api/machine/v1beta1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/oc-recover/oc-recover/pkg/debugnode"
	"github.com/oc-recover/oc-recover/pkg/etcd"
	"github.com/oc-recover/oc-recover/pkg/exitcode"
	"github.com/oc-recover/oc-recover/pkg/redeploy"
)

// firstReadTimeout bounds the replacement's first API read.
const firstReadTimeout = 20 * time.Second

// ReplaceClients are what a replacement needs: the API clients and a way
// to run commands on a host.
type ReplaceClients struct {
	Clients
	StartRunner func(ctx context.Context, node string) (debugnode.Runner, error)
}

// ReplaceOptions shape a replacement.
type ReplaceOptions struct {
	Node     string
	MemberID string
	Now      time.Time
	// PollInterval paces the waits (default 2s).
	PollInterval time.Duration
	// Command is how the user runs the plugin ("oc recover", "kubectl
	// recover"), for the commands its messages advise; empty means
	// "oc recover".
	Command string
}

// command is opts.Command, or "oc recover" when the caller gave none.
func (o ReplaceOptions) command() string {
	if o.Command == "" {
		return "oc recover"
	}
	return o.Command
}

// Replacement is a planned (or resumed) replacement of one member.
type Replacement struct {
	Record   *Record
	Resuming bool
	Report   *Report
	Decision Decision

	c    ReplaceClients
	opts ReplaceOptions
}

// PlanReplace reads the cluster and decides whether and how the member of
// opts.Node can be replaced. It changes nothing. A replacement that an
// earlier run started (its record on etcd/cluster) is resumed, whatever the
// member's state now.
func PlanReplace(ctx context.Context, c ReplaceClients, opts ReplaceOptions) (*Replacement, error) {
	if opts.PollInterval == 0 {
		opts.PollInterval = 2 * time.Second
	}
	// The first read is bounded: when etcd has lost quorum the API server
	// cannot answer, and waiting the whole --timeout tells nothing more.
	rctx, cancel := context.WithTimeout(ctx, firstReadTimeout)
	rec, err := ReadRecord(rctx, c.Operator)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("%w\nThe API server cannot read etcd. If etcd has lost quorum (most of its members down), replacing a member cannot help: restore the cluster from a backup, by OpenShift's procedure (OpenShift 4.5 documentation, Backup and restore, 5.3 \"Restoring to a previous cluster state\")", err)
	}
	if rec != nil && rec.Node != opts.Node {
		return nil, fmt.Errorf("refusing: a replacement of the member of %s is in progress (started %s, recorded on etcd/cluster annotation %s); finish it first with `%s member replace %s`",
			rec.Node, rec.Started.Format(time.RFC3339), RecordAnnotation, opts.command(), rec.Node)
	}
	report, err := Gather(ctx, c.Clients, opts.Command)
	if err != nil {
		return nil, err
	}
	p := &Replacement{Record: rec, Resuming: rec != nil, Report: report, c: c, opts: opts}
	if p.Resuming {
		if opts.MemberID != "" && !strings.EqualFold(strings.TrimPrefix(opts.MemberID, "0x"), rec.MemberID) {
			return nil, fmt.Errorf("refusing: --member-id %s does not match the replacement in progress, of member %s", opts.MemberID, rec.MemberID)
		}
		return p, nil
	}
	t, err := p.target(ctx)
	if err != nil {
		return nil, err
	}
	d, err := Judge(report, t)
	if err != nil {
		return nil, err
	}
	p.Decision = d
	p.Record = &Record{Node: opts.Node, MemberID: d.Member.MemberID, Procedure: d.Procedure, Started: opts.Now.UTC(), Override: d.Override, Machine: t.Machine}
	if len(d.Member.PeerURLs) > 0 {
		p.Record.PeerURL = d.Member.PeerURLs[0]
	}
	if d.Procedure == ProcedureMachine {
		if err := p.prepareMachine(ctx); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// target reads the node and its Machine.
func (p *Replacement) target(ctx context.Context) (Target, error) {
	t := Target{Node: p.opts.Node, MemberID: p.opts.MemberID}
	node, err := p.c.Kube.CoreV1().Nodes().Get(ctx, p.opts.Node, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return t, nil
	case err != nil:
		return t, fmt.Errorf("read node %s: %w", p.opts.Node, err)
	}
	t.NodeExists = true
	_, t.ControlPlane = node.Labels[masterRoleSelector]
	for _, a := range node.Status.Addresses {
		t.Addresses = append(t.Addresses, a.Address)
	}
	if p.c.Machine == nil {
		return t, nil
	}
	machines, err := p.c.Machine.MachineV1beta1().Machines(machineNamespace).List(ctx, metav1.ListOptions{LabelSelector: masterMachineSelect})
	switch {
	case apierrors.IsNotFound(err):
		return t, nil // no Machine API
	case err != nil:
		return t, fmt.Errorf("list machines: %w", err)
	}
	t.MachineAPI = len(machines.Items) > 0
	for _, m := range machines.Items {
		if m.Status.NodeRef != nil && m.Status.NodeRef.Name == p.opts.Node && m.DeletionTimestamp == nil {
			t.Machine = m.Name
			for _, a := range m.Status.Addresses {
				t.Addresses = append(t.Addresses, a.Address)
			}
		}
	}
	return t, nil
}

// prepareMachine saves the copy of the node's Machine that will replace it
// (OpenShift 4.5 documentation, Backup and restore, 2.4.1 "Replacing an
// unhealthy etcd member whose machine is not running or whose node is not
// ready", step 3): status, spec.providerID, annotations,
// generation, resourceVersion, uid and selfLink stripped, renamed to the
// next free index.
func (p *Replacement) prepareMachine(ctx context.Context) error {
	mc := p.c.Machine.MachineV1beta1().Machines(machineNamespace)
	old, err := mc.Get(ctx, p.Record.Machine, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("read machine %s: %w", p.Record.Machine, err)
	}
	all, err := mc.List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list machines: %w", err)
	}
	var names []string
	for _, m := range all.Items {
		names = append(names, m.Name)
	}
	newName, err := NextMachineName(old.Name, names)
	if err != nil {
		return err
	}
	saved := StripMachine(old, newName, p.opts.Node)
	data, err := json.Marshal(saved)
	if err != nil {
		return err
	}
	p.Record.NewMachine, p.Record.Saved = newName, data
	return nil
}

var machineIndex = regexp.MustCompile(`^(.*-)(\d+)$`)

// NextMachineName is old's name with the ending number changed to the next
// one no Machine uses (clustername-8qw5l-master-0 → ...-master-3).
func NextMachineName(old string, existing []string) (string, error) {
	m := machineIndex.FindStringSubmatch(old)
	if m == nil {
		return "", fmt.Errorf("machine name %s does not end in an index (-<n>); cannot choose the replacement's name", old)
	}
	prefix, next := m[1], 0
	for _, name := range append(existing, old) {
		if mm := machineIndex.FindStringSubmatch(name); mm != nil && mm[1] == prefix {
			if n, err := strconv.Atoi(mm[2]); err == nil && n >= next {
				next = n + 1
			}
		}
	}
	return fmt.Sprintf("%s%d", prefix, next), nil
}

// StripMachine is the documentation's edit of the saved Machine (2.4.1, step
// 3; see prepareMachine): everything the machine controller set for the old
// instance removed, a new name.
func StripMachine(old *machinev1beta1.Machine, newName, node string) *machinev1beta1.Machine {
	m := &machinev1beta1.Machine{
		TypeMeta: metav1.TypeMeta{APIVersion: "machine.openshift.io/v1beta1", Kind: "Machine"},
		ObjectMeta: metav1.ObjectMeta{
			Name:            newName,
			Namespace:       old.Namespace,
			Labels:          old.Labels,
			OwnerReferences: old.OwnerReferences,
			Annotations:     map[string]string{ReplacesNodeAnnotation: node},
		},
		Spec: *old.Spec.DeepCopy(),
	}
	m.Spec.ProviderID = nil
	return m
}

// Step is one step of the plan.
type Step struct {
	Title  string   `json:"title"`
	Detail []string `json:"detail,omitempty"`
	Done   bool     `json:"done"`
}

// Steps is the ordered plan, the steps an earlier run completed marked
// done. Only the leading steps are judged: a later step's check speaks of
// the cluster as the earlier steps leave it (fewer etcd pods than nodes
// means something else before the new Machine exists), and Run judges
// each again when it comes to it.
func (p *Replacement) Steps(ctx context.Context) ([]Step, error) {
	var steps []Step
	judging := true
	for _, s := range p.steps() {
		done := false
		if judging {
			var err error
			if done, err = s.done(ctx); err != nil {
				return nil, err
			}
			judging = done
		}
		steps = append(steps, Step{Title: s.title, Detail: s.detail, Done: done})
	}
	return steps, nil
}

type step struct {
	title  string
	detail []string
	done   func(ctx context.Context) (bool, error)
	run    func(ctx context.Context, out io.Writer) error
}

func (p *Replacement) steps() []step {
	r := p.Record
	node := r.Node
	secrets := memberSecrets(node)
	recordStep := step{
		title:  "record the replacement on etcd/cluster",
		detail: []string{fmt.Sprintf("annotate etcd/cluster %s (member %s, procedure %s; removed at the end)", RecordAnnotation, r.MemberID, r.Procedure)},
		done: func(ctx context.Context) (bool, error) {
			rec, err := ReadRecord(ctx, p.c.Operator)
			return rec != nil, err
		},
		run: func(ctx context.Context, _ io.Writer) error { return writeRecord(ctx, p.c.Operator, r) },
	}
	hostStep := step{
		title: fmt.Sprintf("on %s: stop the crashlooping etcd pod and move its data aside", node),
		detail: []string{
			fmt.Sprintf("debug pod on %s, chroot /host: mkdir -p /var/lib/etcd-backup; mv /etc/kubernetes/manifests/etcd-pod.yaml /var/lib/etcd-backup/", node),
			"wait until the etcd container has stopped (crictl ps --name '^etcd$')",
			"mv /var/lib/etcd /tmp/etcd (or /tmp/etcd-<time> when /tmp/etcd exists); nothing is deleted",
		},
		done: p.hostMovedDone,
		run:  p.moveEtcdAside,
	}
	removeStep := step{
		title:  fmt.Sprintf("remove etcd member %s (%s)", r.MemberID, node),
		detail: []string{fmt.Sprintf("etcd member remove %s (peer %s), through an etcd pod on another node", r.MemberID, r.PeerURL)},
		done:   p.memberRemoved,
		run:    p.removeMember,
	}
	secretsStep := step{
		title:  "delete the member's secrets",
		detail: []string{"delete secret -n openshift-etcd " + strings.Join(secrets, " ")},
		done:   p.secretsDone,
		run:    p.deleteSecrets,
	}
	overrideStep := step{
		title:  "lift the etcd quorum guard for the duration",
		detail: []string{fmt.Sprintf("merge-patch etcd/cluster %s (put back as it was at the end)", mustJSON(overridePatch()))},
		done:   p.overrideDone,
		run:    p.setOverride,
	}
	redeployStep := step{
		title:  "force an etcd redeployment when a control-plane node has no etcd pod",
		detail: []string{fmt.Sprintf("merge-patch etcd/cluster %s; wait until every node runs the new revision", redeploy.Patch(redeploy.ReasonPrefix+"<time>"))},
		done:   p.etcdPodsDone,
		run:    p.redeployEtcd,
	}
	verifyStep := step{
		title:  "verify: one healthy member per control-plane node",
		detail: []string{"etcdctl member list and endpoint health, through an etcd pod"},
		done:   func(context.Context) (bool, error) { return false, nil },
		run:    p.verify,
	}
	finishStep := step{
		title:  "put the quorum guard back and remove the record",
		detail: []string{"merge-patch etcd/cluster spec.unsupportedConfigOverrides back to what it was; remove annotation " + RecordAnnotation},
		done:   func(context.Context) (bool, error) { return false, nil },
		run:    func(ctx context.Context, out io.Writer) error { return p.finish(ctx, out, true) },
	}
	var steps []step
	steps = append(steps, recordStep)
	switch r.Procedure {
	case ProcedureCrashloop:
		steps = append(steps, hostStep, removeStep, secretsStep)
	case ProcedureMachine:
		steps = append(steps, removeStep, secretsStep)
		if r.Override {
			steps = append(steps, overrideStep)
		}
		steps = append(steps,
			step{
				title: fmt.Sprintf("delete machine %s", r.Machine),
				detail: []string{fmt.Sprintf("saved first as %s in the record: the old Machine without status, spec.providerID, annotations, generation, resourceVersion, uid, selfLink", r.NewMachine),
					fmt.Sprintf("delete machine -n %s %s; wait until it is gone", machineNamespace, r.Machine)},
				done: p.oldMachineGone,
				run:  p.deleteOldMachine,
			},
			step{
				title:  fmt.Sprintf("create machine %s and wait for phase Running", r.NewMachine),
				detail: []string{fmt.Sprintf("create machine -n %s %s (annotation %s=%s); wait for phase Running and its node Ready", machineNamespace, r.NewMachine, ReplacesNodeAnnotation, node)},
				done:   p.newMachineRunning,
				run:    p.createNewMachine,
			})
		return append(steps, redeployStep, verifyStep, finishStep)
	case ProcedureUPI:
		steps = append(steps, removeStep, secretsStep,
			step{
				title: "a new control-plane host, created the way this one was (not managed by the Machine API)",
				detail: []string{fmt.Sprintf("stop here: create the new host, approve its CSRs (`%s csr approve`), delete node %s once its host is gone, then run this command again", p.opts.command(), node),
					"continues once a Ready control-plane node has no etcd member"},
				done: p.newHostPresent,
				run:  p.waitForNewHost,
			})
	}
	if r.Override {
		steps = append(steps, overrideStep)
	}
	return append(steps, redeployStep, verifyStep, finishStep)
}

// ErrStopped is returned when the replacement waits for the administrator.
var ErrStopped = errors.New("stopped: waiting for the administrator")

// Run carries out the plan's steps that are not done yet, re-reading the
// cluster before each. The quorum guard is always put back, also on
// failure and interruption.
func (p *Replacement) Run(ctx context.Context, out io.Writer) (err error) {
	defer func() {
		if err != nil {
			if ferr := p.finish(context.WithoutCancel(ctx), out, false); ferr != nil {
				err = fmt.Errorf("%w; and putting the quorum guard back failed: %v (set etcd/cluster spec.unsupportedConfigOverrides back by hand)", err, ferr)
			}
		}
	}()
	steps := p.steps()
	for i, s := range steps {
		done, err := s.done(ctx)
		if err != nil {
			return err
		}
		if done {
			fmt.Fprintf(out, "[%d/%d] %s: already done\n", i+1, len(steps), s.title)
			continue
		}
		fmt.Fprintf(out, "[%d/%d] %s\n", i+1, len(steps), s.title)
		if err := s.run(ctx, out); err != nil {
			return err
		}
	}
	return nil
}

// --- the steps -----------------------------------------------------------

func memberSecrets(node string) []string {
	return []string{"etcd-peer-" + node, "etcd-serving-" + node, "etcd-serving-metrics-" + node}
}

// connect reaches etcd through a running etcd pod that is not on the
// target node: the target's member is the one being replaced.
func (p *Replacement) connect(ctx context.Context) (*etcd.Conn, error) {
	pods, err := p.c.Kube.CoreV1().Pods(etcd.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "app=etcd"})
	if err != nil {
		return nil, fmt.Errorf("list etcd pods: %w", err)
	}
	var others []corev1.Pod
	for _, pod := range etcd.RunningPods(pods.Items) {
		if pod.Spec.NodeName != p.Record.Node {
			others = append(others, pod)
		}
	}
	tlsConfig, err := etcd.ClientTLS(ctx, p.c.Kube)
	if err != nil {
		return nil, err
	}
	return etcd.Connect(ctx, p.c.Kube, p.c.Config, tlsConfig, others)
}

// memberList lists the etcd members (connect).
func (p *Replacement) memberList(ctx context.Context) ([]etcd.Member, error) {
	conn, err := p.connect(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.Members(ctx)
}

func (p *Replacement) memberRemoved(ctx context.Context) (bool, error) {
	ms, err := p.memberList(ctx)
	if err != nil {
		return false, err
	}
	for _, m := range ms {
		if etcd.MemberID(m.ID) == p.Record.MemberID {
			return false, nil
		}
	}
	return true, nil
}

func (p *Replacement) removeMember(ctx context.Context, out io.Writer) error {
	id, err := strconv.ParseUint(p.Record.MemberID, 16, 64)
	if err != nil {
		return fmt.Errorf("recorded member ID %q: %w", p.Record.MemberID, err)
	}
	conn, err := p.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	// Remove checks again that the ID is still the node's member.
	removed, err := conn.Remove(ctx, id, p.Record.Node)
	if err != nil || !removed {
		return err
	}
	fmt.Fprintf(out, "  member %s removed (through %s)\n", p.Record.MemberID, conn.Pod)
	return nil
}

// secretsDone: the three secrets are gone, or the node has a new member
// already (the operator issued new secrets for it).
func (p *Replacement) secretsDone(ctx context.Context) (bool, error) {
	if ok, err := p.newMemberPresent(ctx); err != nil || ok {
		return ok, err
	}
	for _, name := range memberSecrets(p.Record.Node) {
		_, err := p.c.Kube.CoreV1().Secrets(etcd.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			return false, nil
		}
		if !apierrors.IsNotFound(err) {
			return false, err
		}
	}
	return true, nil
}

func (p *Replacement) deleteSecrets(ctx context.Context, out io.Writer) error {
	for _, name := range memberSecrets(p.Record.Node) {
		err := p.c.Kube.CoreV1().Secrets(etcd.Namespace).Delete(ctx, name, metav1.DeleteOptions{})
		switch {
		case err == nil:
			fmt.Fprintf(out, "  secret %s/%s deleted\n", etcd.Namespace, name)
		case apierrors.IsNotFound(err):
		default:
			return fmt.Errorf("delete secret %s/%s: %w", etcd.Namespace, name, err)
		}
	}
	return nil
}

// newMemberPresent: the node (crashloop) or its replacement has a member
// other than the removed one.
func (p *Replacement) newMemberPresent(ctx context.Context) (bool, error) {
	names := map[string]bool{p.Record.Node: true}
	if p.Record.NewMachine != "" {
		if node, err := p.replacementNode(ctx); err == nil && node != "" {
			names[node] = true
		}
	}
	ms, err := p.memberList(ctx)
	if err != nil {
		return false, err
	}
	for _, m := range ms {
		if names[m.Name] && etcd.MemberID(m.ID) != p.Record.MemberID {
			return true, nil
		}
	}
	return false, nil
}

func (p *Replacement) overrideDone(ctx context.Context) (bool, error) {
	e, err := p.c.Operator.OperatorV1().Etcds().Get(ctx, "cluster", metav1.GetOptions{})
	if err != nil {
		return false, fmt.Errorf("read etcd/cluster: %w", err)
	}
	return overrideOn(e.Spec.UnsupportedConfigOverrides.Raw) && p.Record.OverrideSet, nil
}

func (p *Replacement) setOverride(ctx context.Context, out io.Writer) error {
	e, err := p.c.Operator.OperatorV1().Etcds().Get(ctx, "cluster", metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("read etcd/cluster: %w", err)
	}
	if !p.Record.OverrideSet {
		// Remember what was there before, once: on a resumed run the
		// override may be ours already.
		p.Record.OriginalOverrides = json.RawMessage("null")
		if raw := e.Spec.UnsupportedConfigOverrides.Raw; len(raw) > 0 {
			p.Record.OriginalOverrides = append(json.RawMessage(nil), raw...)
		}
		p.Record.OverrideSet = true
		if err := writeRecord(ctx, p.c.Operator, p.Record); err != nil {
			return err
		}
	}
	if err := patchEtcd(ctx, p.c.Operator, overridePatch()); err != nil {
		return err
	}
	fmt.Fprintf(out, "  etcd/cluster spec.unsupportedConfigOverrides.%s=true (until the end of the replacement)\n", unsafeEtcdOverride)
	return nil
}

// finish puts the quorum guard back as it was, and on success removes the
// record. After a failure the record stays (the re-run continues from it)
// with the override marked as put back.
func (p *Replacement) finish(ctx context.Context, out io.Writer, success bool) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	rec, err := ReadRecord(ctx, p.c.Operator)
	if err != nil {
		return err
	}
	if rec != nil && rec.OverrideSet {
		patch, err := restorePatch(rec.OriginalOverrides)
		if err != nil {
			return err
		}
		if err := patchEtcd(ctx, p.c.Operator, patch); err != nil {
			return err
		}
		fmt.Fprintf(out, "  etcd/cluster spec.unsupportedConfigOverrides put back to %s\n", string(orNull(rec.OriginalOverrides)))
		rec.OverrideSet, rec.OriginalOverrides = false, nil
		p.Record.OverrideSet, p.Record.OriginalOverrides = false, nil
		if !success {
			return writeRecord(ctx, p.c.Operator, rec)
		}
	}
	if success && rec != nil {
		return deleteRecord(ctx, p.c.Operator)
	}
	return nil
}

func orNull(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 {
		return json.RawMessage("null")
	}
	return raw
}

// hostMovedDone: the member is gone already (the move came before the
// removal), or the manifest and the data are both out of place.
func (p *Replacement) hostMovedDone(ctx context.Context) (bool, error) {
	if removed, err := p.memberRemoved(ctx); err != nil || removed {
		return removed, err
	}
	return false, nil
}

const moveEtcdAsideScript = `set -eu
manifest=/etc/kubernetes/manifests/etcd-pod.yaml
if [ -e "$manifest" ]; then
  mkdir -p /var/lib/etcd-backup
  dest=/var/lib/etcd-backup/etcd-pod.yaml
  [ -e "$dest" ] && dest="/var/lib/etcd-backup/etcd-pod.yaml.$(date +%Y%m%d%H%M%S)"
  mv "$manifest" "$dest"
  echo "moved $manifest to $dest"
fi
i=0
while crictl ps --name '^etcd$' --state running -q 2>/dev/null | grep -q .; do
  i=$((i + 1))
  if [ "$i" -gt 120 ]; then echo "the etcd container is still running 4 minutes after its manifest was moved" >&2; exit 1; fi
  sleep 2
done
echo "the etcd container is stopped"
if [ -d /var/lib/etcd ] && [ -n "$(ls -A /var/lib/etcd)" ]; then
  dest=/tmp/etcd
  [ -e "$dest" ] && dest="/tmp/etcd-$(date +%Y%m%d%H%M%S)"
  mv /var/lib/etcd "$dest"
  echo "moved /var/lib/etcd to $dest"
fi
`

func (p *Replacement) moveEtcdAside(ctx context.Context, out io.Writer) error {
	s, err := p.c.StartRunner(ctx, p.Record.Node)
	if err != nil {
		return err
	}
	defer s.Close(ctx)
	var stderr strings.Builder
	w := &prefixWriter{w: out, prefix: "  " + p.Record.Node + ": "}
	code, err := s.Host(ctx, moveEtcdAsideScript, nil, w, &stderr)
	w.flush()
	if err != nil {
		return fmt.Errorf("on %s: %w", p.Record.Node, err)
	}
	if code != 0 {
		return fmt.Errorf("on %s, moving etcd aside failed (exit %d): %s", p.Record.Node, code, strings.TrimSpace(stderr.String()))
	}
	return nil
}

func (p *Replacement) oldMachineGone(ctx context.Context) (bool, error) {
	_, err := p.c.Machine.MachineV1beta1().Machines(machineNamespace).Get(ctx, p.Record.Machine, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return true, nil
	}
	return false, err
}

func (p *Replacement) deleteOldMachine(ctx context.Context, out io.Writer) error {
	mc := p.c.Machine.MachineV1beta1().Machines(machineNamespace)
	err := mc.Delete(ctx, p.Record.Machine, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete machine %s: %w", p.Record.Machine, err)
	}
	fmt.Fprintf(out, "  waiting for machine %s to be deleted (the machine controller removes its instance and node)\n", p.Record.Machine)
	return p.poll(ctx, fmt.Sprintf("machine %s to be deleted", p.Record.Machine), func(ctx context.Context) (bool, string, error) {
		m, err := mc.Get(ctx, p.Record.Machine, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, "", nil
		}
		if err != nil {
			return false, err.Error(), nil
		}
		return false, "phase " + phase(m), nil
	})
}

func (p *Replacement) replacementNode(ctx context.Context) (string, error) {
	m, err := p.c.Machine.MachineV1beta1().Machines(machineNamespace).Get(ctx, p.Record.NewMachine, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	if m.Status.NodeRef == nil {
		return "", nil
	}
	return m.Status.NodeRef.Name, nil
}

func (p *Replacement) newMachineRunning(ctx context.Context) (bool, error) {
	m, err := p.c.Machine.MachineV1beta1().Machines(machineNamespace).Get(ctx, p.Record.NewMachine, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	ok, _, err := p.machineReady(ctx, m)
	return ok, err
}

func (p *Replacement) machineReady(ctx context.Context, m *machinev1beta1.Machine) (bool, string, error) {
	if phase(m) != "Running" || m.Status.NodeRef == nil {
		return false, "phase " + phase(m), nil
	}
	n, err := p.c.Kube.CoreV1().Nodes().Get(ctx, m.Status.NodeRef.Name, metav1.GetOptions{})
	if err != nil {
		return false, fmt.Sprintf("phase Running, node %s: %v", m.Status.NodeRef.Name, err), nil
	}
	ready, _ := nodeReadiness(n)
	return ready == "True", fmt.Sprintf("phase Running, node %s Ready=%s", n.Name, ready), nil
}

func (p *Replacement) createNewMachine(ctx context.Context, out io.Writer) error {
	mc := p.c.Machine.MachineV1beta1().Machines(machineNamespace)
	m := &machinev1beta1.Machine{}
	if err := json.Unmarshal(p.Record.Saved, m); err != nil {
		return fmt.Errorf("the saved machine in the record: %w", err)
	}
	if _, err := mc.Create(ctx, m, metav1.CreateOptions{}); err != nil {
		if !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create machine %s: %w", m.Name, err)
		}
		existing, gerr := mc.Get(ctx, m.Name, metav1.GetOptions{})
		if gerr != nil {
			return gerr
		}
		if existing.Annotations[ReplacesNodeAnnotation] != p.Record.Node {
			return fmt.Errorf("a machine %s exists that this replacement did not create (no %s=%s annotation); not touching it", m.Name, ReplacesNodeAnnotation, p.Record.Node)
		}
	} else {
		fmt.Fprintf(out, "  machine %s created\n", m.Name)
	}
	last := ""
	return p.poll(ctx, fmt.Sprintf("machine %s to reach phase Running with its node Ready", m.Name), func(ctx context.Context) (bool, string, error) {
		cur, err := mc.Get(ctx, m.Name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		ok, state, err := p.machineReady(ctx, cur)
		if state != last {
			fmt.Fprintf(out, "  machine %s: %s\n", m.Name, state)
			last = state
		}
		return ok, state, err
	})
}

// newHostPresent: a Ready control-plane node without an etcd member (the
// host built by hand to replace the lost one).
func (p *Replacement) newHostPresent(ctx context.Context) (bool, error) {
	nodes, err := p.c.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: masterRoleSelector})
	if err != nil {
		return false, err
	}
	ms, err := p.memberList(ctx)
	if err != nil {
		return false, err
	}
	members := map[string]bool{}
	for _, m := range ms {
		members[m.Name] = true
	}
	for i := range nodes.Items {
		ready, _ := nodeReadiness(&nodes.Items[i])
		if ready == "True" && !members[nodes.Items[i].Name] {
			return true, nil
		}
	}
	return false, nil
}

func (p *Replacement) waitForNewHost(_ context.Context, out io.Writer) error {
	fmt.Fprintf(out, "  The Machine API does not manage %s. Create the new control-plane host the way this one was created\n", p.Record.Node)
	fmt.Fprintf(out, "  (OpenShift 4.5 documentation, Backup and restore, 2.4.1 \"Replacing an unhealthy etcd member whose machine is not running or whose node is not ready\", step 3),\n  approve its CSRs (`%s csr approve`), delete node %s once its host is gone,\n", p.opts.command(), p.Record.Node)
	fmt.Fprintf(out, "  then run `%s member replace %s` again: it continues from here.\n", p.opts.command(), p.Record.Node)
	return exitcode.NeedsAttention(ErrStopped)
}

// controlPlaneNodes are the control-plane nodes that should run etcd: all,
// less the target when its Machine is being replaced.
func (p *Replacement) controlPlaneNodes(ctx context.Context) ([]corev1.Node, error) {
	nodes, err := p.c.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: masterRoleSelector})
	if err != nil {
		return nil, fmt.Errorf("list control-plane nodes: %w", err)
	}
	var out []corev1.Node
	for _, n := range nodes.Items {
		if n.Name == p.Record.Node && p.Record.Procedure != ProcedureCrashloop {
			continue
		}
		out = append(out, n)
	}
	return out, nil
}

func (p *Replacement) etcdPodsDone(ctx context.Context) (bool, error) {
	running, total, err := p.etcdPodCount(ctx)
	return err == nil && running >= total && total > 0, err
}

func (p *Replacement) etcdPodCount(ctx context.Context) (running, total int, err error) {
	nodes, err := p.controlPlaneNodes(ctx)
	if err != nil {
		return 0, 0, err
	}
	pods, err := p.c.Kube.CoreV1().Pods(etcd.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "app=etcd"})
	if err != nil {
		return 0, 0, fmt.Errorf("list etcd pods: %w", err)
	}
	on := map[string]bool{}
	for _, pod := range etcd.RunningPods(pods.Items) {
		on[pod.Spec.NodeName] = true
	}
	for _, n := range nodes {
		if on[n.Name] {
			running++
		}
	}
	return running, len(nodes), nil
}

func (p *Replacement) redeployEtcd(ctx context.Context, out io.Writer) error {
	running, total, err := p.etcdPodCount(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "  %d etcd pods running for %d control-plane nodes: forcing a redeployment\n", running, total)
	op, err := redeploy.For(p.c.Operator, "etcd")
	if err != nil {
		return err
	}
	reason := redeploy.NewReason(time.Now())
	_, after, err := op.Redeploy(ctx, reason, func(s redeploy.State) {
		fmt.Fprintf(out, "  etcd: %s (latest revision %d)\n", s.Summary(), s.Latest)
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "  etcd: every node at revision %d\n", after.Latest)
	return nil
}

// verify waits until every control-plane node has exactly one member, all
// healthy; an extra member is reported, never removed.
func (p *Replacement) verify(ctx context.Context, out io.Writer) error {
	var last *Report
	lastLine := ""
	err := p.poll(ctx, "one healthy etcd member per control-plane node", func(ctx context.Context) (bool, string, error) {
		r, err := Gather(ctx, p.c.Clients, p.opts.Command)
		if err != nil {
			return false, err.Error(), nil
		}
		last = r
		line := summary(r)
		if line != lastLine {
			fmt.Fprintf(out, "  %s\n", line)
			lastLine = line
		}
		return p.everyNodeHealthy(r), line, nil
	})
	if err != nil {
		return err
	}
	if len(last.ExtraMembers) > 0 {
		var extra []string
		for _, s := range last.ExtraMembers {
			extra = append(extra, fmt.Sprintf("%s (%s, %s)", s.MemberID, orDash(s.Node), strings.Join(s.PeerURLs, ",")))
		}
		return exitcode.NeedsAttention(fmt.Errorf("etcd has a member that matches no control-plane node: %s; it was not removed: check it (`%s member status`) and remove it by hand if it is stale", strings.Join(extra, "; "), p.opts.command()))
	}
	fmt.Fprintf(out, "  %d members, all healthy\n", len(last.Members))
	return nil
}

// everyNodeHealthy: every control-plane node that should run etcd has a
// healthy member (the replaced node itself only when it stays).
func (p *Replacement) everyNodeHealthy(r *Report) bool {
	n := 0
	for _, s := range r.Members {
		if s.Node == p.Record.Node && p.Record.Procedure != ProcedureCrashloop {
			continue
		}
		if s.MemberID == "" || s.Healthy == nil || !*s.Healthy {
			return false
		}
		n++
	}
	return n > 0
}

func summary(r *Report) string {
	var parts []string
	for _, s := range r.Members {
		h := "no member"
		switch {
		case s.MemberID != "" && s.Healthy != nil && *s.Healthy:
			h = "healthy"
		case s.MemberID != "":
			h = "member " + s.MemberID + " not healthy yet"
		}
		parts = append(parts, s.Node+": "+h)
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

func phase(m *machinev1beta1.Machine) string {
	if m.Status.Phase == nil || *m.Status.Phase == "" {
		return "(none yet)"
	}
	return *m.Status.Phase
}

// poll waits for cond, pacing by the poll interval, until ctx ends.
func (p *Replacement) poll(ctx context.Context, what string, cond func(ctx context.Context) (bool, string, error)) error {
	var state string
	err := wait.PollUntilContextCancel(ctx, p.opts.PollInterval, true, func(ctx context.Context) (bool, error) {
		ok, s, err := cond(ctx)
		state = s
		return ok, err
	})
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("timed out (--timeout) waiting for %s (last seen: %s); run the command again to continue", what, state)
		}
		return fmt.Errorf("waiting for %s (last seen: %s): %w", what, state, err)
	}
	return nil
}

func mustJSON(v any) string {
	data, _ := json.Marshal(v)
	return string(data)
}

// prefixWriter prefixes each line written to it.
type prefixWriter struct {
	w      io.Writer
	prefix string
	buf    []byte
}

func (w *prefixWriter) Write(b []byte) (int, error) {
	w.buf = append(w.buf, b...)
	for {
		i := strings.IndexByte(string(w.buf), '\n')
		if i < 0 {
			return len(b), nil
		}
		fmt.Fprintf(w.w, "%s%s\n", w.prefix, w.buf[:i])
		w.buf = w.buf[i+1:]
	}
}

func (w *prefixWriter) flush() {
	if len(w.buf) > 0 {
		fmt.Fprintf(w.w, "%s%s\n", w.prefix, w.buf)
		w.buf = nil
	}
}
