package member

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/oc-recover/oc-recover/pkg/etcd"
	"github.com/oc-recover/oc-recover/pkg/runbook"
)

func (p *Replacement) removeMemberStep() runbook.Step {
	r := p.Record
	return runbook.Step{
		Title:  fmt.Sprintf("remove etcd member %s (%s)", r.MemberID, r.Node),
		Detail: []string{fmt.Sprintf("etcd member remove %s (peer %s), through an etcd pod on another node", r.MemberID, r.PeerURL)},
		Done:   p.memberRemoved,
		Run:    p.removeMember,
	}
}

func (p *Replacement) deleteSecretsStep() runbook.Step {
	return runbook.Step{
		Title:  "delete the member's secrets",
		Detail: []string{"delete secret -n openshift-etcd " + strings.Join(memberSecrets(p.Record.Node), " ")},
		Done:   p.secretsDone,
		Run:    p.deleteSecrets,
	}
}

// memberSecrets are the etcd operator's secrets for the member of node.
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
	return etcd.Connect(ctx, p.c.Kube, p.c.REST, tlsConfig, others)
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
	return p.secretsGone(ctx)
}

// secretsGone: none of the member's three secrets exists.
func (p *Replacement) secretsGone(ctx context.Context) (bool, error) {
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
