// Package clients builds, from one REST config, the typed clients the
// commands use: Kubernetes' and OpenShift's (config, operator, machine,
// image), so that each command does not assemble them again.
package clients

import (
	configclient "github.com/openshift/client-go/config/clientset/versioned"
	imageclient "github.com/openshift/client-go/image/clientset/versioned"
	machineclient "github.com/openshift/client-go/machine/clientset/versioned"
	operatorclient "github.com/openshift/client-go/operator/clientset/versioned"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
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
