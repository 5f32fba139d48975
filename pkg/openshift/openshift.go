// Package openshift holds the facts about an OpenShift cluster that more
// than one part of oc-recover reads: which nodes make the control plane,
// when a node counts as Ready, and what the etcd operator says about its
// members. They live here once so that backup, member, csr and power cannot
// disagree about them.
package openshift

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	operatorv1 "github.com/openshift/api/operator/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// The labels a control-plane node carries. OpenShift 4 has always set
// MasterLabel; releases from 4.9 set ControlPlaneLabel as well, and the
// upstream name is the only one Kubernetes itself still uses, so a node with
// either is a control-plane node.
const (
	MasterLabel       = "node-role.kubernetes.io/master"
	ControlPlaneLabel = "node-role.kubernetes.io/control-plane"
)

// IsControlPlane reports whether n is a control-plane node.
func IsControlPlane(n *corev1.Node) bool {
	_, master := n.Labels[MasterLabel]
	_, cp := n.Labels[ControlPlaneLabel]
	return master || cp
}

// ControlPlaneNodes lists the control-plane nodes, sorted by name. A label
// selector cannot say "this label or that one", so it lists once by each
// label and merges: two requests however many workers the cluster has.
func ControlPlaneNodes(ctx context.Context, kube kubernetes.Interface) ([]corev1.Node, error) {
	byName := map[string]corev1.Node{}
	for _, label := range []string{MasterLabel, ControlPlaneLabel} {
		list, err := kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: label})
		if err != nil {
			return nil, fmt.Errorf("list control-plane nodes: %w", err)
		}
		for _, n := range list.Items {
			byName[n.Name] = n
		}
	}
	nodes := make([]corev1.Node, 0, len(byName))
	for _, n := range byName {
		nodes = append(nodes, n)
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Name < nodes[j].Name })
	return nodes, nil
}

// NodeReadyStatus is the status of n's Ready condition: True, False, or
// Unknown (also when the kubelet never reported one).
func NodeReadyStatus(n *corev1.Node) corev1.ConditionStatus {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status
		}
	}
	return corev1.ConditionUnknown
}

// NodeReady reports whether n's Ready condition is True.
func NodeReady(n *corev1.Node) bool {
	return NodeReadyStatus(n) == corev1.ConditionTrue
}

// NodeUnreachable reports whether the node controller has tainted n
// unreachable: its kubelet stopped reporting.
func NodeUnreachable(n *corev1.Node) bool {
	for _, t := range n.Spec.Taints {
		if t.Key == corev1.TaintNodeUnreachable {
			return true
		}
	}
	return false
}

// EtcdMembersAvailable is the message of the etcd operator's
// EtcdMembersAvailable condition ("3 members are available" or
// "2 of 3 members are available, master-1 is unhealthy"), or "" when it
// reports none.
func EtcdMembersAvailable(etcd *operatorv1.Etcd) string {
	for _, c := range etcd.Status.Conditions {
		if c.Type == "EtcdMembersAvailable" {
			return c.Message
		}
	}
	return ""
}

// UnhealthyMembers is the names the EtcdMembersAvailable message reports
// as "<name> is unhealthy" (the etcd operator names members after their
// nodes).
func UnhealthyMembers(message string) map[string]bool {
	unhealthy := map[string]bool{}
	for _, part := range strings.Split(message, ", ") {
		if name, ok := strings.CutSuffix(part, " is unhealthy"); ok {
			unhealthy[name] = true
		}
	}
	return unhealthy
}

// QuorumGuardOverride is the key in etcd/cluster's
// spec.unsupportedConfigOverrides that lets the etcd operator roll revisions
// with fewer than three healthy members: the quorum guard override
// (OpenShift 4.12 documentation, Backup and restore, 5.4.2 "Restoring to a
// previous cluster state").
const QuorumGuardOverride = "useUnsupportedUnsafeNonHANonProductionUnstableEtcd"

// QuorumGuardLifted reports whether raw, etcd/cluster's
// spec.unsupportedConfigOverrides, lifts the quorum guard. The operator
// takes the value as a boolean or as a string that parses as one ("true",
// "1", "t", ...).
func QuorumGuardLifted(raw []byte) bool {
	if len(raw) == 0 {
		return false
	}
	var overrides map[string]any
	if err := json.Unmarshal(raw, &overrides); err != nil {
		return false
	}
	switch v := overrides[QuorumGuardOverride].(type) {
	case bool:
		return v
	case string:
		on, err := strconv.ParseBool(v)
		return err == nil && on
	}
	return false
}

// LiftQuorumGuardPatch is the merge patch of etcd/cluster that lifts the
// quorum guard, keeping the other unsupported overrides.
func LiftQuorumGuardPatch() map[string]any {
	return map[string]any{"spec": map[string]any{"unsupportedConfigOverrides": map[string]any{QuorumGuardOverride: true}}}
}

// PutBackOverridesPatch is the merge patch of etcd/cluster that puts
// spec.unsupportedConfigOverrides back to original (JSON; null or empty:
// there was none). A merge patch merges maps, so the override key is nulled
// explicitly when the original did not have it.
func PutBackOverridesPatch(original json.RawMessage) (map[string]any, error) {
	var orig map[string]any
	if len(original) > 0 && string(original) != "null" {
		if err := json.Unmarshal(original, &orig); err != nil {
			return nil, fmt.Errorf("recorded unsupportedConfigOverrides: %w", err)
		}
	}
	if orig == nil {
		return map[string]any{"spec": map[string]any{"unsupportedConfigOverrides": nil}}, nil
	}
	value := map[string]any{}
	for k, v := range orig {
		value[k] = v
	}
	if _, ok := orig[QuorumGuardOverride]; !ok {
		value[QuorumGuardOverride] = nil
	}
	return map[string]any{"spec": map[string]any{"unsupportedConfigOverrides": value}}, nil
}
