package health

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/oc-recover/oc-recover/pkg/debugnode"
	"github.com/oc-recover/oc-recover/pkg/openshift"
)

// hostIDs are the checks of the hosts area.
var hostIDs = []string{"hosts.disk", "hosts.clock", "hosts.kubeletcerts", "hosts.tmp"}

// DefaultHostParallel bounds the debug pods --deep runs at once.
const DefaultHostParallel = 8

// hostScriptTimeout bounds the host script on one node; each of its
// commands is bounded to 30 s on the host.
const hostScriptTimeout = 3 * time.Minute

// hostChecks runs the host script on every control-plane node, through
// one debug pod per node (removed afterwards, whatever happens), a bounded
// number at a time. Only the control plane: it is what a recovery runs
// on, and it stays a handful of hosts however large the cluster; the
// workers' disks show in their nodes' DiskPressure (nodes.pressure).
// Without --deep nothing runs and nothing is created.
func hostChecks(ctx context.Context, c *cluster) []Result {
	if !c.opts.Deep {
		return nil
	}
	if c.opts.StartRunner == nil {
		return failAll(errors.New("no debug-node engine"), hostIDs...)
	}
	nodes, err := c.Nodes(ctx)
	if err != nil {
		return failAll(err, hostIDs...)
	}
	var targets []*corev1.Node
	for i := range nodes {
		if openshift.IsControlPlane(&nodes[i]) {
			targets = append(targets, &nodes[i])
		}
	}
	sort.Slice(targets, func(i, j int) bool { return targets[i].Name < targets[j].Name })
	if len(targets) == 0 {
		return failAll(errors.New("no control-plane node"), hostIDs...)
	}
	parallel := c.opts.HostParallel
	if parallel <= 0 {
		parallel = DefaultHostParallel
	}
	reports := make([]HostReport, len(targets))
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i, n := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ready := nodeReady(n); ready != "" {
				reports[i] = HostReport{Node: n.Name, NotChecked: ready}
				return
			}
			sem <- struct{}{}
			defer func() { <-sem }()
			reports[i] = runHostScript(ctx, c.opts.StartRunner, n.Name)
		}()
	}
	wg.Wait()
	return HostChecks(reports, c.opts.Now)
}

// nodeReady is why a debug pod would not start on n ("" when it would):
// a kubelet that does not report Ready does not start pods either.
func nodeReady(n *corev1.Node) string {
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			if cond.Status == corev1.ConditionTrue {
				return ""
			}
			return fmt.Sprintf("node is not Ready (%s)", cond.Reason)
		}
	}
	return "node reports no Ready condition"
}

// runHostScript runs HostScript on node and reads its sections. The
// debug pod is removed on every path, with a time budget of its own.
func runHostScript(ctx context.Context, start debugnode.StartFunc, node string) (rep HostReport) {
	rep.Node = node
	run, err := start(ctx, node)
	if err != nil {
		rep.Err = err
		return rep
	}
	defer func() {
		if err := run.Close(context.WithoutCancel(ctx)); err != nil {
			rep.CleanupErr = err
		}
	}()
	sctx, cancel := context.WithTimeout(ctx, hostScriptTimeout)
	defer cancel()
	var out, errOut bytes.Buffer
	code, err := run.Host(sctx, HostScript, nil, &out, &errOut)
	switch {
	case err != nil:
		rep.Err = err
	case code != 0:
		rep.Err = fmt.Errorf("the host script exited %d: %s", code, abbreviate(strings.TrimSpace(errOut.String()), 200))
	default:
		rep.Sections = ParseHostOutput(out.String())
	}
	return rep
}
