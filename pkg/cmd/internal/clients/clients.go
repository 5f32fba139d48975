// Package clients builds, from one REST config, the typed clients the
// commands use: Kubernetes' and OpenShift's (config, operator, machine,
// image), so that each command does not assemble them again.
package clients

import (
	"k8s.io/cli-runtime/pkg/genericclioptions"

	configclient "github.com/openshift/client-go/config/clientset/versioned"
	imageclient "github.com/openshift/client-go/image/clientset/versioned"
	machineclient "github.com/openshift/client-go/machine/clientset/versioned"
	operatorclient "github.com/openshift/client-go/operator/clientset/versioned"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/oc-recover/oc-recover/pkg/era"
	"github.com/oc-recover/oc-recover/pkg/exitcode"
)

// Set is every typed client, sharing one REST config.
type Set struct {
	Config   *rest.Config
	Kube     kubernetes.Interface
	OCConfig configclient.Interface
	Operator operatorclient.Interface
	Machine  machineclient.Interface
	Image    imageclient.Interface
}

// New builds the clients. Building makes no request.
func New(cfg *rest.Config) (*Set, error) {
	s := &Set{Config: cfg}
	var err error
	if s.Kube, err = kubernetes.NewForConfig(cfg); err != nil {
		return nil, err
	}
	if s.OCConfig, err = configclient.NewForConfig(cfg); err != nil {
		return nil, err
	}
	if s.Operator, err = operatorclient.NewForConfig(cfg); err != nil {
		return nil, err
	}
	if s.Machine, err = machineclient.NewForConfig(cfg); err != nil {
		return nil, err
	}
	if s.Image, err = imageclient.NewForConfig(cfg); err != nil {
		return nil, err
	}
	return s, nil
}

// Era is what era.RequireSupported reads, which every command that talks to
// a cluster calls first.
func (s *Set) Era() era.Clients { return era.Clients{Kube: s.Kube, Config: s.OCConfig} }

// FromGetter builds the clients from the command line's kubeconfig flags: a
// kubeconfig that cannot be loaded is a usage error (exit 2). qps and burst,
// when not 0, raise client-go's client-side rate limit (5 requests a second
// by default) for commands that send many requests in parallel.
func FromGetter(f genericclioptions.RESTClientGetter, qps float32, burst int) (*Set, error) {
	cfg, err := f.ToRESTConfig()
	if err != nil {
		return nil, exitcode.Usage(err)
	}
	if qps != 0 || burst != 0 {
		cfg = rest.CopyConfig(cfg)
		cfg.QPS, cfg.Burst = qps, burst
	}
	return New(cfg)
}
