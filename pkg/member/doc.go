// Package member reports on etcd members and replaces an unhealthy one
// (OpenShift 4.5 documentation, Backup and restore, chapter 2 "Replacing an
// unhealthy etcd member"): which member is unhealthy, why, and which of the
// two replacement procedures applies.
//
// Reading: Gather (gather.go) reads every control-plane node's member from
// the API and from etcd; Diagnose and Decide (diagnose.go) say what is wrong
// and which procedure applies; Judge (judge.go) refuses a replacement that
// would make things worse. Replacing: PlanReplace (replace.go) builds the
// procedure as a table of pkg/runbook steps, one file per group of steps
// (replace_members.go, replace_machine.go, replace_guard.go,
// replace_host.go, replace_verify.go); the Record on etcd/cluster
// (record.go) is what makes a replacement resumable.
package member
