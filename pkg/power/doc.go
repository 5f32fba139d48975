// Package power shuts a cluster down gracefully and starts it again
// (OpenShift 4.5 documentation, Backup and restore, chapter 3 "Shutting down
// the cluster gracefully" and chapter 4 "Restarting the cluster
// gracefully"). For a shutdown: the pre-flight reads (Preflight: the nodes
// and the kubelet signer's expiry against the planned restart), the order
// in which nodes go down, and scheduling `shutdown -h 1` on every node
// through debug pods so that nothing is left half-done (Shutdown). For a
// restart: approving the nodes' valid CSRs round after round and judging
// the nodes and cluster operators until the cluster is up (Startup).
package power
