package box

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	configv1 "github.com/openshift/api/config/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/util/retry"
)

// ClusterOperatorNames are the cluster operators of a 4.14 cluster, as
// `oc get clusteroperators` lists them.
var ClusterOperatorNames = []string{
	"authentication", "baremetal", "cloud-controller-manager", "cloud-credential", "cluster-autoscaler",
	"config-operator", "console", "control-plane-machine-set", "csi-snapshot-controller", "dns", "etcd",
	"image-registry", "ingress", "insights", "kube-apiserver", "kube-controller-manager", "kube-scheduler",
	"kube-storage-version-migrator", "machine-api", "machine-approver", "machine-config", "marketplace",
	"monitoring", "network", "node-tuning", "openshift-apiserver", "openshift-controller-manager",
	"openshift-samples", "operator-lifecycle-manager", "operator-lifecycle-manager-catalog",
	"operator-lifecycle-manager-packageserver", "service-ca", "storage",
}

// clusterOperators simulates the cluster operators' status (the
// ClusterOperator objects of config.openshift.io/v1): Available, not
// Progressing, not Degraded while the cluster is healthy; the operators
// whose operands run on a node that is NotReady, or that depend on etcd,
// turn Degraded (or unavailable when too many nodes are down) as they do on
// a real cluster; once nothing affects them any more they recover, one
// after another, within the settle time. DegradeOperator forces one
// Degraded.
type clusterOperators struct {
	b      *Box
	period time.Duration
	settle time.Duration

	// syncMu serialises the periodic sync and syncNow.
	syncMu sync.Mutex
	// written is each operator's status as last written.
	written map[string]operatorState
	// resyncedAt is when every status was last written regardless.
	resyncedAt time.Time
	// recoverAt is when an operator that nothing affects any more reports
	// healthy again.
	recoverAt map[string]time.Time

	faultMu sync.Mutex
	faults  map[string]string // forced Degraded messages
}

// operatorState is what an operator reports.
type operatorState struct {
	Available, Progressing, Degraded bool
	Reason, Message                  string
}

var healthyOperator = operatorState{Available: true, Reason: "AsExpected"}

func (s operatorState) healthy() bool { return s.Available && !s.Progressing && !s.Degraded }

// clusterOperatorResync is how often the simulator writes every status
// again, changed or not.
const clusterOperatorResync = 15 * time.Second

func newClusterOperators(b *Box, period, settle time.Duration) *clusterOperators {
	return &clusterOperators{b: b, period: period, settle: settle, written: map[string]operatorState{},
		recoverAt: map[string]time.Time{}, faults: map[string]string{}}
}

// DegradeOperator makes the cluster operator name report Degraded with
// message, whatever the cluster's state, until called with an empty message.
func (b *Box) DegradeOperator(name, message string) {
	b.operators.faultMu.Lock()
	defer b.operators.faultMu.Unlock()
	if message == "" {
		delete(b.operators.faults, name)
	} else {
		b.operators.faults[name] = message
	}
}

// seed creates every ClusterOperator, healthy, as an installed cluster has them.
func (c *clusterOperators) seed(ctx context.Context) error {
	api := c.b.Config.ConfigV1().ClusterOperators()
	for _, name := range ClusterOperatorNames {
		co, err := api.Create(ctx, &configv1.ClusterOperator{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create clusteroperator %s: %w", name, err)
		}
		if err != nil {
			continue
		}
		c.fillStatus(co, healthyOperator)
		if _, err := api.UpdateStatus(ctx, co, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("clusteroperator %s status: %w", name, err)
		}
		c.written[name] = healthyOperator
	}
	return nil
}

func (c *clusterOperators) run(ctx context.Context) {
	everyPeriod(ctx, c.period, func() {
		nodes, err := c.b.nodeLister().List(labels.Everything())
		if err == nil {
			err = c.sync(ctx, nodes)
		}
		if err != nil && ctx.Err() == nil {
			klogf("cluster operators: %v", err)
		}
	})
}

// syncNow brings the operators up to date with the nodes as the API has
// them now (not as the watch last saw them).
func (c *clusterOperators) syncNow(ctx context.Context) error {
	list, err := c.b.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	nodes := make([]*corev1.Node, len(list.Items))
	for i := range list.Items {
		nodes[i] = &list.Items[i]
	}
	return c.sync(ctx, nodes)
}

// clusterView is what the operators' health depends on.
type clusterView struct {
	masters, workers                 int
	mastersNotReady, workersNotReady []string
	etcdHealthy, etcdVoting          int
	// rotations are the kube-apiserver operator's failing certificate
	// rotations, as its cluster operator reports them.
	rotations []string
}

func (c *clusterOperators) view(nodes []*corev1.Node) clusterView {
	var v clusterView
	for _, n := range nodes {
		_, master := n.Labels["node-role.kubernetes.io/master"]
		ready := nodeIsReady(n)
		switch {
		case master:
			v.masters++
			if !ready {
				v.mastersNotReady = append(v.mastersNotReady, n.Name)
			}
		default:
			v.workers++
			if !ready {
				v.workersNotReady = append(v.workersNotReady, n.Name)
			}
		}
	}
	sort.Strings(v.mastersNotReady)
	sort.Strings(v.workersNotReady)
	v.etcdHealthy, v.etcdVoting = c.b.etcdHealth()
	v.rotations = c.b.certRegen.failingRotations()
	return v
}

func nodeIsReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// effect is how the cluster's state affects operator name, and whether it does.
func (v clusterView) effect(name string) (operatorState, bool) {
	s := healthyOperator
	notReadyMasters := len(v.mastersNotReady)
	mastersDown := notReadyMasters > 0
	noMaster := v.masters > 0 && notReadyMasters == v.masters
	// Workloads run on the workers, or on the masters of a compact cluster.
	workloadNodes, workloadNotReady := v.workers, v.workersNotReady
	if v.workers == 0 {
		workloadNodes, workloadNotReady = v.masters, v.mastersNotReady
	}
	workloadsDown := len(workloadNotReady) > 0
	noWorkloadNode := workloadNodes > 0 && len(workloadNotReady) == workloadNodes
	anyDown := mastersDown || len(v.workersNotReady) > 0
	nodeList := func(names []string) string {
		quoted := make([]string, len(names))
		for i, n := range names {
			quoted[i] = fmt.Sprintf("node %q not ready", n)
		}
		return strings.Join(quoted, ", ")
	}
	degrade := func(reason, msg string) { s.Degraded, s.Reason, s.Message = true, reason, msg }
	unavailable := func(reason, msg string) {
		s.Available, s.Degraded, s.Reason, s.Message = false, true, reason, msg
	}
	switch name {
	case "etcd":
		switch {
		case v.etcdVoting > 0 && v.etcdHealthy <= v.etcdVoting/2:
			unavailable("EtcdMembers_NoQuorum", fmt.Sprintf("EtcdMembersAvailable: %d of %d members are available", v.etcdHealthy, v.etcdVoting))
		case v.etcdHealthy < v.etcdVoting:
			degrade("EtcdMembers_UnhealthyMembers", fmt.Sprintf("EtcdMembersDegraded: %d of %d members are available", v.etcdHealthy, v.etcdVoting))
		case mastersDown:
			degrade("NodeController_MasterNodesReady", "NodeControllerDegraded: The master nodes not ready: "+nodeList(v.mastersNotReady))
		}
	case "kube-apiserver", "kube-controller-manager", "kube-scheduler":
		switch {
		case noMaster:
			unavailable("StaticPods_ZeroNodesActive", "StaticPodsAvailable: 0 nodes are active")
		case mastersDown:
			degrade("NodeController_MasterNodesReady", "NodeControllerDegraded: The master nodes not ready: "+nodeList(v.mastersNotReady))
		}
		// The operator's cluster operator unions its *Degraded
		// conditions, the certificate rotations' among them.
		if name == "kube-apiserver" && s.Available && len(v.rotations) > 0 {
			msgs := v.rotations
			if s.Degraded {
				msgs = append([]string{s.Message}, msgs...)
			}
			degrade("CertRotation_Error", strings.Join(msgs, "\n"))
		}
	case "openshift-apiserver", "authentication", "openshift-controller-manager", "console", "operator-lifecycle-manager-packageserver":
		switch {
		case noMaster || (name == "console" && noWorkloadNode):
			unavailable("APIServices_Error", fmt.Sprintf("%s: no available replica", name))
		case mastersDown:
			degrade("APIServerDeployment_UnavailablePod", fmt.Sprintf("APIServerDeploymentDegraded: %d of %d requested instances are unavailable", notReadyMasters, v.masters))
		}
	case "ingress", "image-registry", "monitoring":
		switch {
		case noWorkloadNode:
			unavailable("IngressUnavailable", fmt.Sprintf("%s: the deployment does not have minimum availability: no schedulable node is Ready", name))
		case workloadsDown:
			degrade("DeploymentDegraded", fmt.Sprintf("%s: %d of %d nodes for its replicas are not ready: %s", name, len(workloadNotReady), workloadNodes, nodeList(workloadNotReady)))
		}
	case "dns":
		if anyDown {
			degrade("DNSDegraded", "DNS default is degraded")
		}
	case "network", "node-tuning", "machine-config":
		if anyDown {
			n := len(v.mastersNotReady) + len(v.workersNotReady)
			s.Progressing, s.Reason, s.Message = true, "Deploying", fmt.Sprintf("DaemonSet is not available (awaiting %d nodes)", n)
		}
	}
	return s, !s.healthy()
}

// sync computes every operator's status and writes what changed.
func (c *clusterOperators) sync(ctx context.Context, nodes []*corev1.Node) error {
	c.syncMu.Lock()
	defer c.syncMu.Unlock()
	v := c.view(nodes)
	c.faultMu.Lock()
	faults := make(map[string]string, len(c.faults))
	for k, m := range c.faults {
		faults[k] = m
	}
	c.faultMu.Unlock()
	now := time.Now()
	// Now and then every status is written again, changed or not (an
	// unchanged one is a no-op for the API), as the operators' status
	// controllers resync: what the simulator remembers writing is not
	// always what the API holds (a write acknowledged while etcd changed
	// its membership was seen missing), and a status it never rewrote
	// would stay wrong for good.
	resync := now.Sub(c.resyncedAt) >= clusterOperatorResync
	if resync {
		c.resyncedAt = now
	}
	// An API that does not answer (etcd without quorum) must not hold the
	// simulator up for long: the round ends at the first failed write.
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	for i, name := range ClusterOperatorNames {
		want, affected := v.effect(name)
		if msg, ok := c.b.rollouts.progressingMessage(name); ok {
			// A static-pod operator rolling a revision out.
			want.Progressing, want.Reason, want.Message, affected = true, "NodeInstaller", msg, true
		}
		last, known := c.written[name]
		switch {
		case affected:
			delete(c.recoverAt, name)
		case known && !last.healthy():
			// Nothing affects it any more: it recovers after a while, the
			// operators one after another.
			at, ok := c.recoverAt[name]
			if !ok {
				at = now.Add(c.settle * time.Duration(1+i%4) / 4)
				c.recoverAt[name] = at
			}
			if now.Before(at) {
				want = last
			} else {
				delete(c.recoverAt, name)
			}
		}
		if msg, ok := faults[name]; ok {
			want = operatorState{Available: want.Available, Progressing: want.Progressing, Degraded: true, Reason: "BoxFault", Message: msg}
		}
		if known && last == want && !resync {
			continue
		}
		if err := c.write(ctx, name, want); err != nil {
			return fmt.Errorf("clusteroperator %s: %w", name, err)
		}
		c.written[name] = want
	}
	return nil
}

func (c *clusterOperators) write(ctx context.Context, name string, s operatorState) error {
	api := c.b.Config.ConfigV1().ClusterOperators()
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		co, err := api.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		c.fillStatus(co, s)
		_, err = api.UpdateStatus(ctx, co, metav1.UpdateOptions{})
		return err
	})
}

// fillStatus writes s into co's conditions, keeping the transition times
// of the conditions whose status did not change.
func (c *clusterOperators) fillStatus(co *configv1.ClusterOperator, s operatorState) {
	now := metav1.Now()
	cond := func(t configv1.ClusterStatusConditionType, on bool, reason, msg string) configv1.ClusterOperatorStatusCondition {
		status := configv1.ConditionFalse
		if on {
			status = configv1.ConditionTrue
		}
		out := configv1.ClusterOperatorStatusCondition{Type: t, Status: status, Reason: reason, Message: msg, LastTransitionTime: now}
		for _, old := range co.Status.Conditions {
			if old.Type == t && old.Status == status {
				out.LastTransitionTime = old.LastTransitionTime
			}
		}
		return out
	}
	availableReason, availableMsg := "AsExpected", "All is well"
	if !s.Available {
		availableReason, availableMsg = s.Reason, s.Message
	}
	progressingReason, progressingMsg := "AsExpected", "Desired and current number of instances are equal"
	if s.Progressing {
		progressingReason, progressingMsg = s.Reason, s.Message
	}
	degradedReason, degradedMsg := "AsExpected", "All is well"
	if s.Degraded {
		degradedReason, degradedMsg = s.Reason, s.Message
	}
	co.Status.Conditions = []configv1.ClusterOperatorStatusCondition{
		cond(configv1.OperatorAvailable, s.Available, availableReason, availableMsg),
		cond(configv1.OperatorProgressing, s.Progressing, progressingReason, progressingMsg),
		cond(configv1.OperatorDegraded, s.Degraded, degradedReason, degradedMsg),
		cond(configv1.OperatorUpgradeable, true, "AsExpected", "All is well"),
	}
	co.Status.Versions = []configv1.OperandVersion{{Name: "operator", Version: c.b.opts.Version}}
	if len(co.Status.RelatedObjects) == 0 {
		co.Status.RelatedObjects = []configv1.ObjectReference{{Group: "", Resource: "namespaces", Name: "openshift-" + co.Name}}
	}
}
