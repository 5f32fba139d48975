// Package backup takes, verifies and lists etcd backups (OpenShift 4.5
// documentation, Backup and restore, 1 "Backing up etcd"):
// run the etcd operator's backup script on one healthy control-plane host,
// bring the snapshot and the static-pod resources to the administrator's
// disk, and prove there that they restore.
//
// The pieces, in the order a backup meets them: Preflight reads the cluster
// and refuses what would give a backup that cannot be restored (rollouts,
// the first 24 hours, no healthy node); Run owns the directory on the
// administrator's disk; Take runs the host script (hostscript.go), brings
// the files over and checks them (resources.go, the snapshot through
// pkg/etcd); Verify, List, Prune and Recent read what is on disk; and
// Requirement is the rule that a recent backup exists before member
// replace or shutdown changes anything.
package backup
