package box

import (
	"context"
	"fmt"
	"sync"
	"time"

	machineinformers "github.com/openshift/client-go/machine/informers/externalversions"
	machinelisters "github.com/openshift/client-go/machine/listers/machine/v1beta1"
	"k8s.io/client-go/informers"
	corelisters "k8s.io/client-go/listers/core/v1"
)

// The simulators' caches, and what an outage does to them.
//
// On a real cluster the controllers the box simulates (the Machine API's,
// the operators') are pods that watch the API through informers and hold a
// leader-election lease. A restore of releases before 4.18 rewinds etcd's
// revision: a watch that resumes from the revision it had reached gets
// nothing until the restored etcd passes that revision, and the cache stays
// stale. What saves them is the outage itself: a controller that cannot
// renew its lease for its renew deadline (OpenShift's default 107 s) exits,
// and its new process lists afresh. The box's simulators share one set of
// informers, so it models that: when the API comes back after an outage at
// least Options.LeaderRenewDeadline long, the informers are started anew
// (a fresh list) and the simulators read the new caches; after a shorter
// one they keep watching, stale after a rewinding restore, as a real
// controller would.

// defaultLeaderRenewDeadline is OpenShift's leader-election renew deadline
// for its operators on highly available clusters.
const defaultLeaderRenewDeadline = 107 * time.Second

// simCaches are the simulators' informers, started anew by restart.
type simCaches struct {
	mu       sync.RWMutex
	kube     informers.SharedInformerFactory
	machines machineinformers.SharedInformerFactory
	stop     context.CancelFunc
	restarts int
}

// start makes and starts a generation of informers and waits until they
// have listed.
func (b *Box) startCaches(ctx, runCtx context.Context) error {
	genCtx, stop := context.WithCancel(runCtx)
	kube := informers.NewSharedInformerFactory(b.Kube, 0)
	machines := machineinformers.NewSharedInformerFactoryWithOptions(b.Machine, 0, machineinformers.WithNamespace(machineNamespace))
	kube.Core().V1().Nodes().Lister()
	machines.Machine().V1beta1().Machines().Lister()
	kube.Start(genCtx.Done())
	machines.Start(genCtx.Done())
	for typ, ok := range kube.WaitForCacheSync(ctx.Done()) {
		if !ok {
			stop()
			return fmt.Errorf("watch %v: not synced", typ)
		}
	}
	for typ, ok := range machines.WaitForCacheSync(ctx.Done()) {
		if !ok {
			stop()
			return fmt.Errorf("watch %v: not synced", typ)
		}
	}
	c := &b.caches
	c.mu.Lock()
	oldStop, oldKube, oldMachines := c.stop, c.kube, c.machines
	c.kube, c.machines, c.stop = kube, machines, stop
	c.mu.Unlock()
	if oldStop != nil {
		oldStop()
		oldKube.Shutdown()
		oldMachines.Shutdown()
		c.mu.Lock()
		c.restarts++
		c.mu.Unlock()
	}
	return nil
}

// restartCaches is the simulators' processes restarting after they lost
// their leases: a fresh list, retried until the API answers or ctx ends.
func (b *Box) restartCaches(ctx context.Context) {
	for ctx.Err() == nil {
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := b.startCaches(wctx, ctx)
		cancel()
		if err == nil {
			klogf("simulators: restarted after the API outage (leader election lost), caches listed afresh")
			return
		}
		sleepCtx(ctx, time.Second)
	}
}

// CacheRestarts is how many times the simulators restarted their caches
// after an API outage.
func (b *Box) CacheRestarts() int {
	b.caches.mu.RLock()
	defer b.caches.mu.RUnlock()
	return b.caches.restarts
}

func (b *Box) stopCaches() {
	c := &b.caches
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stop != nil {
		c.stop()
		c.kube.Shutdown()
		c.machines.Shutdown()
	}
}

// nodeLister and machineLister read the current generation's caches.
func (b *Box) nodeLister() corelisters.NodeLister {
	b.caches.mu.RLock()
	defer b.caches.mu.RUnlock()
	return b.caches.kube.Core().V1().Nodes().Lister()
}

func (b *Box) machineLister() machinelisters.MachineLister {
	b.caches.mu.RLock()
	defer b.caches.mu.RUnlock()
	return b.caches.machines.Machine().V1beta1().Machines().Lister()
}

func (b *Box) leaderRenewDeadline() time.Duration {
	if b.opts.LeaderRenewDeadline > 0 {
		return b.opts.LeaderRenewDeadline
	}
	return defaultLeaderRenewDeadline
}
