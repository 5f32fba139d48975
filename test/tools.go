//go:build tools

// Package tools pins the programs the tests build and run: the real etcdctl
// and etcdutl put on the box's hosts, a third-party kubectl for the
// plugin-discovery tests, and krew (kubectl-krew) and validate-krew-manifest
// for the krew installation test.
package tools

import (
	_ "github.com/oc-recover/oc-recover/cmd/oc-recover"
	_ "go.etcd.io/etcd/etcdctl/v3"
	_ "go.etcd.io/etcd/etcdutl/v3"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "sigs.k8s.io/krew/cmd/krew"
	_ "sigs.k8s.io/krew/cmd/validate-krew-manifest"
)
