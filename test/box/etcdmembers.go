package box

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// reconcileMembers is the etcd operator's cluster member controller, given
// the members and their health as last observed:
//
//   - a control-plane host whose member the cluster no longer has learns
//     so (etcd itself stops a removed member that runs; its data is of no
//     use any more);
//   - when every member is healthy, the member of a node whose etcd pod
//     waits for its membership (etcd container running, not ready: an empty
//     data dir and no member by that name or peer URL) is added through a
//     healthy member, and the node's etcd learns the cluster to join. An
//     error (`etcdserver: unhealthy cluster` for a few seconds after the
//     cluster changed) is logged and tried again on the next pass.
func (o *etcdOperator) reconcileMembers(ctx context.Context, observed []memberHealth) {
	var via *clientv3.Client
	for _, m := range observed {
		if m.Healthy && !m.Learner && len(m.URLs) > 0 {
			if c, err := o.client(m.URLs[0]); err == nil {
				via = c
				break
			}
		}
	}
	if via == nil {
		return
	}
	// What is decided here needs the membership as it is now, not as a
	// lagging member last saw it.
	lctx, cancel := context.WithTimeout(ctx, time.Second)
	resp, err := via.MemberList(lctx)
	cancel()
	if err != nil {
		return
	}
	members := resp.Members
	for _, n := range o.b.masters() {
		if n.Etcd != nil && findMember(members, n) == nil && !n.Etcd.isRemoved() {
			klogf("etcd operator: %s has no etcd member", n.Name)
			n.Etcd.markRemoved()
		}
	}
	for _, m := range observed {
		if !m.Healthy {
			return // the real controller scales only a healthy cluster
		}
	}
	pods, err := o.b.Kube.CoreV1().Pods("openshift-etcd").List(ctx, metav1.ListOptions{LabelSelector: "app=etcd"})
	if err != nil {
		return
	}
	for i := range pods.Items {
		pod := &pods.Items[i]
		if !strings.HasPrefix(pod.Name, "etcd-") || !awaitingMembership(pod) {
			continue
		}
		n := o.b.Node(pod.Spec.NodeName)
		if n == nil || !n.Master || n.Etcd == nil || findMember(members, n) != nil {
			continue
		}
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		added, err := via.MemberAdd(actx, []string{n.Etcd.PeerURL()})
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				klogf("etcd operator: add the member of %s (%s): %v; retrying", n.Name, n.Etcd.PeerURL(), err)
			}
			return
		}
		cluster := joinCluster(added, n.Name)
		klogf("etcd operator: added member %x for %s; it joins %s", added.Member.ID, n.Name, cluster)
		n.Etcd.admit(cluster)
		return // one member at a time
	}
}

// awaitingMembership says whether an etcd pod's etcd container runs but is
// not ready: the pod that the real controller picks to scale up.
func awaitingMembership(pod *corev1.Pod) bool {
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.Name == "etcd" {
			return cs.State.Running != nil && !cs.Ready
		}
	}
	return false
}

// findMember finds a host's member, by name or peer URL.
func findMember(members []*etcdserverpb.Member, n *Node) *etcdserverpb.Member {
	for _, m := range members {
		if m.Name == n.Name {
			return m
		}
		for _, u := range m.PeerURLs {
			if u == n.Etcd.PeerURL() {
				return m
			}
		}
	}
	return nil
}

// joinCluster is the initial-cluster a member added with resp starts with:
// every member's name (the new one's is not known to the cluster yet) and
// peer URLs.
func joinCluster(resp *clientv3.MemberAddResponse, name string) string {
	var parts []string
	for _, m := range resp.Members {
		n := m.Name
		if m.ID == resp.Member.ID {
			n = name
		}
		if n == "" {
			n = fmt.Sprintf("%x", m.ID)
		}
		for _, u := range m.PeerURLs {
			parts = append(parts, n+"="+u)
		}
	}
	return strings.Join(parts, ",")
}
