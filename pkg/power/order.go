package power

import (
	"sort"

	corev1 "k8s.io/api/core/v1"

	"github.com/oc-recover/oc-recover/pkg/openshift"
)

// Role is a node's part in the cluster.
type Role string

const (
	// ControlPlane nodes run etcd and the API.
	ControlPlane Role = "control-plane"
	// Worker is every other node (infra nodes included).
	Worker Role = "worker"
)

// Target is a node to shut down.
type Target struct {
	Node  string `json:"node"`
	Role  Role   `json:"role"`
	Ready bool   `json:"ready"`
}

// ShutdownOrder is the order in which the nodes are shut down: the
// workers first, then the control plane, each by name. OpenShift's
// documentation (4.5, Backup and restore, 3.2 "Shutting down the cluster")
// shuts down "all nodes" without an order; the control plane goes last so
// that the API, which the debug pods on the other nodes need, stays up until
// every shutdown is scheduled, and the workloads stop before what runs them.
func ShutdownOrder(nodes []corev1.Node) []Target {
	var workers, masters []Target
	for i := range nodes {
		n := &nodes[i]
		t := Target{Node: n.Name, Ready: openshift.NodeReady(n), Role: Worker}
		if openshift.IsControlPlane(n) {
			t.Role = ControlPlane
			masters = append(masters, t)
		} else {
			workers = append(workers, t)
		}
	}
	byName := func(ts []Target) {
		sort.Slice(ts, func(i, j int) bool { return ts[i].Node < ts[j].Node })
	}
	byName(workers)
	byName(masters)
	return append(workers, masters...)
}
