package certs

import (
	"context"
	"fmt"
	"sort"
	"strings"

	operatorv1 "github.com/openshift/api/operator/v1"
	operatorclient "github.com/openshift/client-go/operator/clientset/versioned"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/oc-recover/oc-recover/pkg/power"
)

// A certificate rotation that fails sets the condition
// CertRotation_<name>_Degraded=True on its operator's resource (library-go
// certrotation), with the error as the message; it is set back to False
// once a sync succeeds. After an offline expiry, the kube-apiserver's
// cert-regeneration controller regenerates the expired certificates
// through the same rotations, so these conditions clearing is the sign the
// cluster has recovered them.
const (
	rotationPrefix = "CertRotation_"
	rotationSuffix = "_Degraded"
)

// rotationOperators are the operator resources whose certificate rotations
// report through conditions: the kube-apiserver operator's (most of the
// control plane's signers and client certificates), and the others that
// run library-go certrotation. A cluster that lacks one (an older release)
// is fine.
var rotationOperators = []struct {
	name string
	get  func(ctx context.Context, c operatorclient.Interface) ([]operatorv1.OperatorCondition, error)
}{
	{"kubeapiserver/cluster", func(ctx context.Context, c operatorclient.Interface) ([]operatorv1.OperatorCondition, error) {
		o, err := c.OperatorV1().KubeAPIServers().Get(ctx, "cluster", metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		return o.Status.Conditions, nil
	}},
	{"kubecontrollermanager/cluster", func(ctx context.Context, c operatorclient.Interface) ([]operatorv1.OperatorCondition, error) {
		o, err := c.OperatorV1().KubeControllerManagers().Get(ctx, "cluster", metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		return o.Status.Conditions, nil
	}},
	{"kubescheduler/cluster", func(ctx context.Context, c operatorclient.Interface) ([]operatorv1.OperatorCondition, error) {
		o, err := c.OperatorV1().KubeSchedulers().Get(ctx, "cluster", metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		return o.Status.Conditions, nil
	}},
	{"etcd/cluster", func(ctx context.Context, c operatorclient.Interface) ([]operatorv1.OperatorCondition, error) {
		o, err := c.OperatorV1().Etcds().Get(ctx, "cluster", metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		return o.Status.Conditions, nil
	}},
	{"openshiftapiserver/cluster", func(ctx context.Context, c operatorclient.Interface) ([]operatorv1.OperatorCondition, error) {
		o, err := c.OperatorV1().OpenShiftAPIServers().Get(ctx, "cluster", metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		return o.Status.Conditions, nil
	}},
}

// DegradedRotations returns the conditions of object that say a
// certificate rotation is failing (CertRotation_*_Degraded, status True),
// sorted by type.
func DegradedRotations(object string, conds []operatorv1.OperatorCondition) []power.Condition {
	var out []power.Condition
	for _, c := range conds {
		if c.Status != operatorv1.ConditionTrue || !strings.HasPrefix(c.Type, rotationPrefix) || !strings.HasSuffix(c.Type, rotationSuffix) {
			continue
		}
		out = append(out, power.Condition{Object: object, Type: c.Type, Status: string(c.Status), Message: c.Message})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Type < out[j].Type })
	return out
}

// ReadRotations reads every failing certificate rotation the operators
// report. An operator resource that does not exist reports none.
func ReadRotations(ctx context.Context, c operatorclient.Interface) ([]power.Condition, error) {
	var out []power.Condition
	for _, op := range rotationOperators {
		conds, err := op.get(ctx, c)
		switch {
		case apierrors.IsNotFound(err):
			continue
		case err != nil:
			return nil, fmt.Errorf("read %s (its certificate rotations): %w", op.name, err)
		}
		out = append(out, DegradedRotations(op.name, conds)...)
	}
	return out, nil
}
