package health

import (
	"fmt"
	"sort"
	"strings"
	"time"

	configv1 "github.com/openshift/api/config/v1"
	operatorv1 "github.com/openshift/api/operator/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/oc-recover/oc-recover/pkg/openshift"
)

// A kubelet shows it is alive by renewing its Lease in kube-node-lease
// every 10 s (a quarter of its 40 s duration); it writes its node status,
// and so the Ready heartbeat, only every 5 minutes when nothing changes
// (nodeStatusReportFrequency). The node lifecycle controller judges the
// lease, and so does this check: a heartbeat 4 minutes old is normal.

// staleLease is how long a kubelet may go without renewing its lease
// before its node counts as silent, whatever its last Ready said (the node
// controller's default grace period is 40 s; two minutes leaves room).
const staleLease = 2 * time.Minute

// staleHeartbeat is the same for a node without a lease (leases could not
// be read): the status report's 5 minutes, and the same room.
const staleHeartbeat = 5*time.Minute + staleLease

// Nodes judges the nodes' Ready conditions and their kubelets' leases
// (leases nil when they could not be read): FAIL when a control-plane node
// is not Ready, WARN when a worker is not Ready or a kubelet has gone
// quiet.
func Nodes(nodes []corev1.Node, leases []coordinationv1.Lease, now time.Time) Result {
	r := Result{ID: "nodes.ready", Severity: OK}
	renewed := map[string]time.Time{}
	for _, l := range leases {
		if l.Spec.RenewTime != nil {
			renewed[l.Name] = l.Spec.RenewTime.Time
		}
	}
	ready := 0
	for i := range nodes {
		n := &nodes[i]
		cp := openshift.IsControlPlane(n)
		status := openshift.NodeReadyStatus(n)
		if status == corev1.ConditionTrue {
			ready++
		} else {
			role := "worker"
			if cp {
				role = "control-plane"
				r.Severity = Fail
			} else {
				r.Severity = Worse(r.Severity, Warn)
			}
			r.Evidence = append(r.Evidence, fmt.Sprintf("%s node %s: Ready=%s", role, n.Name, status))
			continue
		}
		if at, ok := renewed[n.Name]; ok {
			if now.Sub(at) > staleLease {
				r.Severity = Worse(r.Severity, Warn)
				r.Evidence = append(r.Evidence, fmt.Sprintf("node %s: Ready, but its kubelet last renewed its lease %s/%s %s ago", n.Name, corev1.NamespaceNodeLease, n.Name, now.Sub(at).Round(time.Second)))
			}
			continue
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && !c.LastHeartbeatTime.IsZero() && now.Sub(c.LastHeartbeatTime.Time) > staleHeartbeat {
				r.Severity = Worse(r.Severity, Warn)
				why := "it has no lease"
				if leases == nil {
					why = "the leases could not be read"
				}
				r.Evidence = append(r.Evidence, fmt.Sprintf("node %s: Ready, but its kubelet last reported %s ago (%s)", n.Name, now.Sub(c.LastHeartbeatTime.Time).Round(time.Second), why))
			}
		}
	}
	r.Summary = fmt.Sprintf("%d of %d nodes Ready", ready, len(nodes))
	if r.Severity != OK {
		r.Fix = "a node that does not come back may wait for its certificates: `csr approve`; a control-plane node lost for good: `member replace <node>`"
	}
	return r
}

// NodePressure judges the kubelets' pressure conditions: FAIL on disk
// pressure on a control-plane node (etcd's disk), WARN on any other.
func NodePressure(nodes []corev1.Node) Result {
	r := Result{ID: "nodes.pressure", Severity: OK, Summary: "no node under pressure"}
	for i := range nodes {
		n := &nodes[i]
		for _, c := range n.Status.Conditions {
			switch c.Type {
			case corev1.NodeMemoryPressure, corev1.NodeDiskPressure, corev1.NodePIDPressure:
			default:
				continue
			}
			if c.Status != corev1.ConditionTrue {
				continue
			}
			if c.Type == corev1.NodeDiskPressure && openshift.IsControlPlane(n) {
				r.Severity = Fail
			} else {
				r.Severity = Worse(r.Severity, Warn)
			}
			r.Evidence = append(r.Evidence, fmt.Sprintf("node %s: %s", n.Name, c.Type))
		}
	}
	if r.Severity != OK {
		r.Summary = fmt.Sprintf("%d pressure condition(s)", len(r.Evidence))
		r.Fix = "free the disk or memory of the nodes named; a control-plane node short of disk endangers its etcd member"
	}
	return r
}

// ClusterOperators judges the ClusterOperators: FAIL when one is not
// Available or is Degraded, WARN when one has been Progressing for more
// than 10 minutes or says it is not Upgradeable.
func ClusterOperators(cos []configv1.ClusterOperator, now time.Time) Result {
	r := Result{ID: "co", Severity: OK}
	settled := 0
	for _, co := range cos {
		cond := func(t configv1.ClusterStatusConditionType) *configv1.ClusterOperatorStatusCondition {
			for i := range co.Status.Conditions {
				if co.Status.Conditions[i].Type == t {
					return &co.Status.Conditions[i]
				}
			}
			return nil
		}
		problems := 0
		say := func(s Severity, format string, args ...any) {
			r.Severity = Worse(r.Severity, s)
			r.Evidence = append(r.Evidence, co.Name+": "+fmt.Sprintf(format, args...))
			problems++
		}
		if c := cond(configv1.OperatorAvailable); c == nil || c.Status != configv1.ConditionTrue {
			say(Fail, "not Available%s", message(c))
		}
		if c := cond(configv1.OperatorDegraded); c != nil && c.Status == configv1.ConditionTrue {
			say(Fail, "Degraded%s", message(c))
		}
		if c := cond(configv1.OperatorProgressing); c != nil && c.Status == configv1.ConditionTrue && now.Sub(c.LastTransitionTime.Time) > 10*time.Minute {
			say(Warn, "Progressing for %s%s", now.Sub(c.LastTransitionTime.Time).Round(time.Minute), message(c))
		}
		if c := cond(configv1.OperatorUpgradeable); c != nil && c.Status == configv1.ConditionFalse {
			say(Warn, "not Upgradeable%s", message(c))
		}
		if problems == 0 {
			settled++
		}
	}
	sort.Strings(r.Evidence)
	r.Summary = fmt.Sprintf("%d of %d cluster operators settled", settled, len(cos))
	if r.Severity == Fail {
		r.Fix = "see `oc get clusteroperators` and the operator's own status; a static-pod operand stuck at an old revision: `redeploy <operand>`"
	}
	return r
}

// ClusterVersion judges clusterversion/version: FAIL when it is not
// Available or is Failing, WARN while an update is in progress (backups
// and restores wait for it).
func ClusterVersion(cv *configv1.ClusterVersion) Result {
	r := Result{ID: "version", Severity: OK, Summary: "OpenShift " + cv.Status.Desired.Version}
	for _, c := range cv.Status.Conditions {
		switch {
		case c.Type == configv1.OperatorAvailable && c.Status != configv1.ConditionTrue:
			r.Severity = Fail
			r.Evidence = append(r.Evidence, "not Available"+message(&configv1.ClusterOperatorStatusCondition{Message: c.Message}))
		case c.Type == "Failing" && c.Status == configv1.ConditionTrue:
			r.Severity = Fail
			r.Evidence = append(r.Evidence, "Failing"+message(&configv1.ClusterOperatorStatusCondition{Message: c.Message}))
		case c.Type == configv1.OperatorProgressing && c.Status == configv1.ConditionTrue:
			r.Severity = Worse(r.Severity, Warn)
			r.Evidence = append(r.Evidence, "update in progress"+message(&configv1.ClusterOperatorStatusCondition{Message: c.Message}))
		}
	}
	return r
}

// StaticPodOperator judges one of the four static-pod operators (etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler), named by name:
// FAIL on any Degraded condition (the certificate rotation's included) or a
// node without a current revision; WARN while nodes run different
// revisions, or when a revision failed on a node in the last 24 hours.
func StaticPodOperator(name string, st operatorv1.StaticPodOperatorStatus, now time.Time) Result {
	r := Result{ID: "staticpods." + strings.ReplaceAll(name, "-", ""), Severity: OK}
	for _, c := range st.Conditions {
		if strings.HasSuffix(c.Type, "Degraded") && c.Status == operatorv1.ConditionTrue {
			r.Severity = Fail
			r.Evidence = append(r.Evidence, fmt.Sprintf("%s: %s", c.Type, oneLine(c.Message)))
		}
	}
	revisions := map[int32][]string{}
	for _, ns := range st.NodeStatuses {
		if ns.CurrentRevision == 0 {
			r.Severity = Fail
			r.Evidence = append(r.Evidence, fmt.Sprintf("node %s runs no revision yet", ns.NodeName))
			continue
		}
		revisions[ns.CurrentRevision] = append(revisions[ns.CurrentRevision], ns.NodeName)
		if ns.LastFailedRevision != 0 && ns.LastFailedTime != nil && now.Sub(ns.LastFailedTime.Time) < 24*time.Hour {
			r.Severity = Worse(r.Severity, Warn)
			r.Evidence = append(r.Evidence, fmt.Sprintf("node %s: revision %d failed %s ago", ns.NodeName, ns.LastFailedRevision, now.Sub(ns.LastFailedTime.Time).Round(time.Minute)))
		}
	}
	if len(revisions) > 1 {
		r.Severity = Worse(r.Severity, Warn)
		r.Evidence = append(r.Evidence, "nodes run different revisions: "+describe(revisions, func(rev int32) string { return fmt.Sprint(rev) }))
	}
	r.Summary = fmt.Sprintf("latest revision %d", st.LatestAvailableRevision)
	if r.Severity == Fail {
		r.Fix = fmt.Sprintf("`oc recover redeploy %s` forces a new revision on every node", name)
	}
	return r
}

// QuorumGuardOverride warns when etcd/cluster still lifts the quorum guard:
// left behind, it lets the operator run etcd with fewer than three members.
func QuorumGuardOverride(etcd *operatorv1.Etcd) Result {
	r := Result{ID: "staticpods.overrides", Severity: OK, Summary: "the etcd quorum guard is in place"}
	if raw := etcd.Spec.UnsupportedConfigOverrides.Raw; openshift.QuorumGuardLifted(raw) {
		r.Severity = Warn
		r.Summary = "the etcd quorum guard is lifted"
		r.Evidence = []string{"etcd/cluster spec.unsupportedConfigOverrides: " + string(raw)}
		r.Fix = "if an `oc recover member replace` was interrupted, run it again to finish; otherwise remove " + openshift.QuorumGuardOverride + " from etcd/cluster"
	}
	return r
}

func message(c *configv1.ClusterOperatorStatusCondition) string {
	if c == nil || c.Message == "" {
		return ""
	}
	return ": " + oneLine(c.Message)
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
