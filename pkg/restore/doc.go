// Package restore restores a cluster to the state of an etcd backup, as
// OpenShift's documentation does by hand in "Restoring to a previous
// cluster state" (Backup and restore, Control plane backup and restore,
// Disaster recovery), through the API and debug pods alone.
//
// What is built so far is the part that changes nothing: the pre-flight
// (Preflight), which reads the backup, the cluster and every control-plane
// host and refuses what a restore would make worse, and the plan it
// produces (Plan), every step with its host commands. Carrying the plan out
// is the next step of this package.
//
// Two profiles, chosen from the cluster's release (Profile): legacy,
// OpenShift 4.4 to 4.17, where cluster-restore.sh also puts back the
// kube-apiserver, kube-controller-manager and kube-scheduler pods of the
// backup and the kubelets are restarted; and modern, 4.18 and later, where
// disable-etcd.sh stops etcd on every control-plane host and the restore
// touches etcd alone.
package restore
