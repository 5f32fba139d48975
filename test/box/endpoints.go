package box

import (
	"context"

	"k8s.io/client-go/informers"

	"k8s.io/kubernetes/pkg/controller/endpointslice"
)

// startEndpointSliceController runs kube-controller-manager's own
// EndpointSlice controller on the box's informers: every Service with a
// selector gets its EndpointSlices as on a cluster, empty while no ready
// pod backs it. The apiserver routes webhook calls by those slices
// (--enable-aggregator-routing, as OpenShift runs it), so a webhook whose
// Service has no endpoint fails at once with "no endpoints available for
// service".
//
// The box's pods cannot be endpoints: their IP is their node's, on the
// loopback network (127.0.0.0/8), which EndpointSlice validation refuses;
// the controller then records a FailedToUpdateEndpointSlices event on the
// Service and retries with back-off. A Service backed by box pods has
// therefore no ready endpoint, as if its pods were not ready.
func (b *Box) startEndpointSliceController(runCtx context.Context) {
	// Its own informers: the simulators' restart after an outage
	// (leaderelection.go), this controller keeps watching.
	f := informers.NewSharedInformerFactory(b.Kube, 0)
	core := f.Core().V1()
	// kube-controller-manager's defaults: 100 endpoints a slice, no
	// batching of pod updates.
	c := endpointslice.NewController(runCtx, core.Pods(), core.Services(), core.Nodes(), f.Discovery().V1().EndpointSlices(), 100, b.Kube, 0)
	// The factory starts the informers the controller added.
	f.Start(runCtx.Done())
	b.wg.Add(1)
	go func() { defer b.wg.Done(); c.Run(runCtx, 2) }()
}
