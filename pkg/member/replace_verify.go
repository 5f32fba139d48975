package member

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/oc-recover/oc-recover/pkg/etcd"
	"github.com/oc-recover/oc-recover/pkg/exitcode"
	"github.com/oc-recover/oc-recover/pkg/openshift"
	"github.com/oc-recover/oc-recover/pkg/redeploy"
	"github.com/oc-recover/oc-recover/pkg/runbook"
)

// The closing steps every procedure shares: an etcd pod on every
// control-plane node, and one healthy member for each.

func (p *Replacement) redeployStep() runbook.Step {
	return runbook.Step{
		Title:  "force an etcd redeployment when a control-plane node has no etcd pod",
		Detail: []string{fmt.Sprintf("merge-patch etcd/cluster %s; wait until every node runs the new revision", redeploy.Patch(redeploy.ReasonPrefix+"<time>"))},
		Done:   p.etcdPodsDone,
		Run:    p.redeployEtcd,
	}
}

// verifyStep has no Done: it runs on every run, the last check before the
// record is removed.
func (p *Replacement) verifyStep() runbook.Step {
	return runbook.Step{
		Title:  "verify: one healthy member per control-plane node",
		Detail: []string{"etcdctl member list and endpoint health, through an etcd pod"},
		Run:    p.verify,
	}
}

// controlPlaneNodes are the control-plane nodes that should run etcd: all,
// less the target when its Machine is being replaced.
func (p *Replacement) controlPlaneNodes(ctx context.Context) ([]corev1.Node, error) {
	nodes, err := openshift.ControlPlaneNodes(ctx, p.c.Kube)
	if err != nil {
		return nil, err
	}
	var out []corev1.Node
	for _, n := range nodes {
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
