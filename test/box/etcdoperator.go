package box

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	operatorv1 "github.com/openshift/api/operator/v1"
	clientv3 "go.etcd.io/etcd/client/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
)

// etcdOperator simulates the parts of OpenShift's cluster-etcd-operator that
// recovery depends on: the EtcdMembersAvailable / EtcdMembersDegraded
// conditions, computed from the real members' health; the cert signer
// (etcdcerts.go), which keeps every control-plane node's certificates; and
// the cluster member controller (etcdmembers.go), which adds the member of
// a node whose etcd pod waits for its membership.
type etcdOperator struct {
	b       *Box
	period  time.Duration
	mu      sync.Mutex
	clients map[string]*clientv3.Client
	members []memberHealth // last known membership
}

type memberHealth struct {
	Name     string
	ID       uint64
	URLs     []string
	PeerURLs []string
	Learner  bool
	Healthy  bool
}

func (o *etcdOperator) run(ctx context.Context) {
	ticker := time.NewTicker(o.period)
	defer ticker.Stop()
	defer o.closeClients()
	for {
		rctx, cancel := context.WithTimeout(ctx, roundTimeout)
		o.sync(rctx)
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

func (o *etcdOperator) client(url string) (*clientv3.Client, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if c, ok := o.clients[url]; ok {
		return c, nil
	}
	c, err := o.b.etcdPKI.newEtcdClient(url)
	if err != nil {
		return nil, err
	}
	o.clients[url] = c
	return c, nil
}

func (o *etcdOperator) closeClients() {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, c := range o.clients {
		_ = c.Close()
	}
	o.clients = map[string]*clientv3.Client{}
}

// membership asks any reachable member for the member list (serializable,
// so it answers without quorum too); when none answers, the last one known.
func (o *etcdOperator) membership(ctx context.Context) []memberHealth {
	for _, n := range o.b.masters() {
		if n.Etcd == nil || !n.Etcd.Running() {
			continue
		}
		c, err := o.client(n.Etcd.ClientURL())
		if err != nil {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		resp, err := c.MemberList(cctx, clientv3.WithSerializable())
		cancel()
		if err != nil {
			continue
		}
		var ms []memberHealth
		for _, m := range resp.Members {
			name := m.Name
			if name == "" {
				name = fmt.Sprintf("%x", m.ID) // added, not started yet
			}
			ms = append(ms, memberHealth{Name: name, ID: m.ID, URLs: m.ClientURLs, PeerURLs: m.PeerURLs, Learner: m.IsLearner})
		}
		sort.Slice(ms, func(i, j int) bool { return ms[i].Name < ms[j].Name })
		o.members = ms
		return ms
	}
	out := make([]memberHealth, len(o.members))
	copy(out, o.members)
	return out
}

// healthy is etcdctl's endpoint health: a linearizable read through that
// member, which needs the member up and the cluster quorate.
func (o *etcdOperator) healthy(ctx context.Context, m memberHealth) bool {
	if len(m.URLs) == 0 {
		return false
	}
	c, err := o.client(m.URLs[0])
	if err != nil {
		return false
	}
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_, err = c.Get(cctx, "health")
	return err == nil
}

// MembersStatus is the EtcdMembersAvailable message, worded as the etcd
// operator words it ("2 of 3 members are available, master-1 is unhealthy").
func MembersStatus(ms []memberHealth) (message string, healthy, voting int) {
	var unhealthy []string
	for _, m := range ms {
		if m.Learner {
			continue
		}
		voting++
		if m.Healthy {
			healthy++
		} else {
			unhealthy = append(unhealthy, m.Name+" is unhealthy")
		}
	}
	if healthy == voting {
		return fmt.Sprintf("%d members are available", voting), healthy, voting
	}
	parts := append([]string{fmt.Sprintf("%d of %d members are available", healthy, voting)}, unhealthy...)
	return strings.Join(parts, ", "), healthy, voting
}

func (o *etcdOperator) sync(ctx context.Context) {
	o.signCerts(ctx)
	ms := o.membership(ctx)
	if len(ms) == 0 {
		return
	}
	var wg sync.WaitGroup
	for i := range ms {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			ms[i].Healthy = o.healthy(ctx, ms[i])
		}(i)
	}
	wg.Wait()
	msg, healthy, voting := MembersStatus(ms)
	o.b.setEtcdHealth(healthy, voting)
	available := operatorv1.OperatorCondition{Type: "EtcdMembersAvailable", Status: operatorv1.ConditionTrue, Reason: "EtcdQuorate", Message: msg}
	if healthy <= voting/2 {
		available.Status, available.Reason = operatorv1.ConditionFalse, "NoQuorum"
	}
	degraded := operatorv1.OperatorCondition{Type: "EtcdMembersDegraded", Status: operatorv1.ConditionFalse, Reason: "AsExpected", Message: "No unhealthy members found"}
	if healthy < voting {
		degraded.Status, degraded.Reason, degraded.Message = operatorv1.ConditionTrue, "UnhealthyMembers", msg
	}
	_ = o.b.updateEtcdConditions(ctx, available, degraded)
	o.reconcileMembers(ctx, ms)
}

// updateEtcdConditions sets conditions on etcd/cluster, writing only when
// something changed.
func (b *Box) updateEtcdConditions(ctx context.Context, conds ...operatorv1.OperatorCondition) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		etcd, err := b.Operator.OperatorV1().Etcds().Get(ctx, "cluster", metav1.GetOptions{})
		if err != nil {
			return err
		}
		changed := false
		for _, c := range conds {
			changed = setOperatorCondition(&etcd.Status.Conditions, c) || changed
		}
		if !changed {
			return nil
		}
		_, err = b.Operator.OperatorV1().Etcds().UpdateStatus(ctx, etcd, metav1.UpdateOptions{})
		return err
	})
}

func setOperatorCondition(conds *[]operatorv1.OperatorCondition, c operatorv1.OperatorCondition) bool {
	for i := range *conds {
		old := &(*conds)[i]
		if old.Type != c.Type {
			continue
		}
		if old.Status == c.Status && old.Reason == c.Reason && old.Message == c.Message {
			return false
		}
		c.LastTransitionTime = old.LastTransitionTime
		if old.Status != c.Status {
			c.LastTransitionTime = metav1.Now()
		}
		*old = c
		return true
	}
	c.LastTransitionTime = metav1.Now()
	*conds = append(*conds, c)
	return true
}

// setEtcdHealth records the members' health as the etcd operator last saw it.
func (b *Box) setEtcdHealth(healthy, voting int) {
	b.healthMu.Lock()
	defer b.healthMu.Unlock()
	b.healthyMembers, b.votingMembers = healthy, voting
}

// etcdHealth is the members' health as the etcd operator last saw it.
func (b *Box) etcdHealth() (healthy, voting int) {
	b.healthMu.Lock()
	defer b.healthMu.Unlock()
	return b.healthyMembers, b.votingMembers
}
