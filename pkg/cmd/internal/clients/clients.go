// Package clients builds, from one REST config, the typed clients the
// commands use: Kubernetes' and OpenShift's (config, operator, machine,
// machine configuration, image), so that each command does not assemble them again.
package clients

import (
	"io"
	"time"

	"k8s.io/cli-runtime/pkg/genericclioptions"

	configclient "github.com/openshift/client-go/config/clientset/versioned"
	imageclient "github.com/openshift/client-go/image/clientset/versioned"
	machineclient "github.com/openshift/client-go/machine/clientset/versioned"
	mcfgclient "github.com/openshift/client-go/machineconfiguration/clientset/versioned"
	operatorclient "github.com/openshift/client-go/operator/clientset/versioned"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/oc-recover/oc-recover/pkg/backup"
	"github.com/oc-recover/oc-recover/pkg/debugnode"
	"github.com/oc-recover/oc-recover/pkg/era"
	"github.com/oc-recover/oc-recover/pkg/exitcode"
)

// Set is every typed client, sharing one REST config.
type Set struct {
	REST            *rest.Config
	Kube            kubernetes.Interface
	OpenShiftConfig configclient.Interface
	Operator        operatorclient.Interface
	Machine         machineclient.Interface
	MachineConfig   mcfgclient.Interface
	Image           imageclient.Interface
}

// New builds the clients. Building makes no request.
func New(cfg *rest.Config) (*Set, error) {
	s := &Set{REST: cfg}
	var err error
	if s.Kube, err = kubernetes.NewForConfig(cfg); err != nil {
		return nil, err
	}
	if s.OpenShiftConfig, err = configclient.NewForConfig(cfg); err != nil {
		return nil, err
	}
	if s.Operator, err = operatorclient.NewForConfig(cfg); err != nil {
		return nil, err
	}
	if s.Machine, err = machineclient.NewForConfig(cfg); err != nil {
		return nil, err
	}
	if s.MachineConfig, err = mcfgclient.NewForConfig(cfg); err != nil {
		return nil, err
	}
	if s.Image, err = imageclient.NewForConfig(cfg); err != nil {
		return nil, err
	}
	return s, nil
}

// Backup is what pkg/backup reads.
func (s *Set) Backup() backup.Clients {
	return backup.Clients{Kube: s.Kube, OpenShiftConfig: s.OpenShiftConfig, Operator: s.Operator}
}

// Engine is the one debug-node engine of a command: image is --image
// (empty: the cluster's tools image stream), deadline bounds each debug
// pod's life on the node, log gets its progress lines.
func (s *Set) Engine(image string, deadline time.Duration, log io.Writer) *debugnode.Engine {
	return &debugnode.Engine{Client: s.Kube, Config: s.REST, Image: image, Images: s.Image, Deadline: deadline, Log: log}
}

// Era is what era.RequireSupported reads, which every command that talks to
// a cluster calls first.
func (s *Set) Era() era.Clients { return era.Clients{Kube: s.Kube, OpenShiftConfig: s.OpenShiftConfig} }

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
