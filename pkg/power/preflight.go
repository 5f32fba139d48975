package power

import (
	"context"
	"errors"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// ErrNoNodes: the cluster lists no node, so there is nothing to shut down.
var ErrNoNodes = errors.New("the cluster has no nodes")

// Preflight is what a shutdown reads and judges before it plans: the nodes
// in the order they go down (ShutdownOrder), and the kube-apiserver-to-
// kubelet signer's expiry against restartBy, the time by which the cluster
// is to be started again. The report it returns holds every node
// (NotScheduled), RestartBy, the signer's expiry and its warning.
//
// A signer that expires before restartBy is a refusal: Preflight then
// returns the report along with the error, so that the command can show
// the expiry that refused it. Any other error comes with no report.
func Preflight(ctx context.Context, kube kubernetes.Interface, restartBy, now time.Time) ([]Target, *ShutdownReport, error) {
	nodes, err := kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("list nodes: %w", err)
	}
	if len(nodes.Items) == 0 {
		return nil, nil, ErrNoNodes
	}
	targets := ShutdownOrder(nodes.Items)
	r := NewReport(targets)
	r.RestartBy = restartBy

	secret, err := kube.CoreV1().Secrets(SignerNamespace).Get(ctx, SignerSecret, metav1.GetOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("refusing: cannot read %s/%s to learn when the kubelet signer expires: %w", SignerNamespace, SignerSecret, err)
	}
	expiry, err := ReadSignerExpiry(secret)
	if err != nil {
		return nil, nil, fmt.Errorf("refusing: %w", err)
	}
	r.Signer = &expiry
	if expiry.Warning != "" {
		r.Warnings = append(r.Warnings, expiry.Warning)
	}
	if err := CheckRestartBy(expiry, restartBy, now); err != nil {
		return targets, r, fmt.Errorf("refusing, nothing was done: %w", err)
	}
	return targets, r, nil
}
