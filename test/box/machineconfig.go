package box

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	mcfgv1 "github.com/openshift/api/machineconfiguration/v1"
	mcfgclient "github.com/openshift/client-go/machineconfiguration/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
)

// The machine-config operator, as far as a health check sees it: the
// MachineConfigPools master and worker with their rendered MachineConfigs,
// the machine-config daemon's annotations on every host's Node, and the
// node controller that sums those annotations (and the Nodes' readiness)
// up into each pool's status. DegradePool makes a host's daemon report
// Degraded, as when it fails to apply or validate its configuration.

// The machine-config daemon's node annotations.
const (
	mcdCurrentConfig = "machineconfiguration.openshift.io/currentConfig"
	mcdDesiredConfig = "machineconfiguration.openshift.io/desiredConfig"
	mcdState         = "machineconfiguration.openshift.io/state"
	mcdReason        = "machineconfiguration.openshift.io/reason"

	mcdStateDone           = "Done"
	mcdStateDegraded       = "Degraded"
	mcdStateUnreconcilable = "Unreconcilable"
)

// machineConfigPools are the pools an installed cluster has.
var machineConfigPools = []string{"master", "worker"}

// machineConfigSources are the MachineConfigs every pool's rendered config
// is made of on a 4.x cluster (the installer's and the controllers').
var machineConfigSources = []string{"00-%s", "01-%s-container-runtime", "01-%s-kubelet", "97-%s-generated-kubelet",
	"98-%s-generated-kubelet", "99-%s-generated-registries", "99-%s-ssh"}

// machineConfigOperator simulates the MCO's node controller and each
// host's daemon.
type machineConfigOperator struct {
	b      *Box
	client mcfgclient.Interface
	period time.Duration
	// rendered is each pool's rendered config name.
	rendered map[string]string
	// syncMu serialises the rounds and DegradePool.
	syncMu sync.Mutex
}

// startMachineConfigOperator seeds the pools and runs the simulator.
func (b *Box) startMachineConfigOperator(ctx, runCtx context.Context) (err error) {
	if b.mco, err = newMachineConfigOperator(b, 500*time.Millisecond); err != nil {
		return err
	}
	if err = b.mco.seed(ctx); err != nil {
		return err
	}
	b.wg.Add(1)
	go func() { defer b.wg.Done(); b.mco.run(runCtx) }()
	return nil
}

func newMachineConfigOperator(b *Box, period time.Duration) (*machineConfigOperator, error) {
	client, err := mcfgclient.NewForConfig(b.jsonConfig())
	if err != nil {
		return nil, err
	}
	o := &machineConfigOperator{b: b, client: client, period: period, rendered: map[string]string{}}
	for _, pool := range machineConfigPools {
		// The render controller names a config after a hash of its content.
		sum := sha256.Sum256([]byte(b.ClusterID + "/" + pool + "/" + b.opts.Version))
		o.rendered[pool] = "rendered-" + pool + "-" + hex.EncodeToString(sum[:16])
	}
	return o, nil
}

// seed creates what the installer and the MCO leave: the MachineConfigs,
// the pools, the daemons' annotations and the pools' healthy status.
func (o *machineConfigOperator) seed(ctx context.Context) error {
	api := o.client.MachineconfigurationV1()
	ignition, _ := json.Marshal(map[string]any{"ignition": map[string]string{"version": "3.4.0"}})
	osImage := "quay.io/openshift-release-dev/ocp-v4.0-art-dev@sha256:" + strings.Repeat("0c", 32)
	for _, pool := range machineConfigPools {
		var sources []corev1.ObjectReference
		mcs := []*mcfgv1.MachineConfig{}
		for _, f := range machineConfigSources {
			name := fmt.Sprintf(f, pool)
			sources = append(sources, corev1.ObjectReference{APIVersion: "machineconfiguration.openshift.io/v1", Kind: "MachineConfig", Name: name})
			mcs = append(mcs, &mcfgv1.MachineConfig{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{mcfgv1.MachineConfigRoleLabelKey: pool}}})
		}
		mcs = append(mcs, &mcfgv1.MachineConfig{ObjectMeta: metav1.ObjectMeta{Name: o.rendered[pool],
			Annotations: map[string]string{"machineconfiguration.openshift.io/generated-by-controller-version": "box-" + o.b.opts.Version,
				"machineconfiguration.openshift.io/release-image-version": o.b.opts.Version}}})
		for _, mc := range mcs {
			mc.Spec = mcfgv1.MachineConfigSpec{Config: runtime.RawExtension{Raw: ignition}, KernelArguments: []string{}, Extensions: []string{}}
			if strings.HasPrefix(mc.Name, "00-") || strings.HasPrefix(mc.Name, "rendered-") {
				mc.Spec.OSImageURL = osImage
			}
			if _, err := api.MachineConfigs().Create(ctx, mc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
				return fmt.Errorf("create machineconfig %s: %w", mc.Name, err)
			}
		}
		labels := map[string]string{"machineconfiguration.openshift.io/mco-built-in": "", "pools.operator.machineconfiguration.openshift.io/" + pool: ""}
		if pool == "master" {
			labels["operator.machineconfiguration.openshift.io/required-for-upgrade"] = ""
		}
		config := mcfgv1.MachineConfigPoolStatusConfiguration{ObjectReference: corev1.ObjectReference{Name: o.rendered[pool]}, Source: sources}
		mcp := &mcfgv1.MachineConfigPool{
			ObjectMeta: metav1.ObjectMeta{Name: pool, Labels: labels},
			Spec: mcfgv1.MachineConfigPoolSpec{
				MachineConfigSelector: &metav1.LabelSelector{MatchLabels: map[string]string{mcfgv1.MachineConfigRoleLabelKey: pool}},
				NodeSelector:          &metav1.LabelSelector{MatchLabels: map[string]string{"node-role.kubernetes.io/" + pool: ""}},
				Configuration:         config,
			},
		}
		created, err := api.MachineConfigPools().Create(ctx, mcp, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("create machineconfigpool %s: %w", pool, err)
		}
		// The pool completed its first rollout at installation.
		created.Status.Configuration = config
		created.Status.Conditions = []mcfgv1.MachineConfigPoolCondition{}
		created.Status.CertExpirys = []mcfgv1.CertExpiry{}
		if _, err := api.MachineConfigPools().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("machineconfigpool %s status: %w", pool, err)
		}
	}
	return o.sync(ctx)
}

func (o *machineConfigOperator) run(ctx context.Context) {
	everyRound(ctx, o.period, func(ctx context.Context) { _ = o.sync(ctx) })
}

// hostNodes reads the Nodes of the box's hosts (only theirs: no daemon
// runs on the Node objects a benchmark creates by the thousand), fresh
// from the API, so that a round never undoes a newer write with an old
// copy.
func (o *machineConfigOperator) hostNodes(ctx context.Context) ([]*corev1.Node, error) {
	var nodes []*corev1.Node
	for _, h := range o.b.NodeList() {
		n, err := o.b.Kube.CoreV1().Nodes().Get(ctx, h.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			continue // not registered yet, or being removed
		case err != nil:
			return nil, err
		}
		nodes = append(nodes, n)
	}
	return nodes, nil
}

// poolNodes sorts Nodes into pools, by name. A node in both roles belongs
// to master, as the MCO decides.
func poolNodes(nodes []*corev1.Node) map[string][]*corev1.Node {
	pools := map[string][]*corev1.Node{}
	for _, n := range nodes {
		if _, ok := n.Labels["node-role.kubernetes.io/master"]; ok {
			pools["master"] = append(pools["master"], n)
		} else if _, ok := n.Labels["node-role.kubernetes.io/worker"]; ok {
			pools["worker"] = append(pools["worker"], n)
		}
	}
	for _, nodes := range pools {
		sort.Slice(nodes, func(i, j int) bool { return nodes[i].Name < nodes[j].Name })
	}
	return pools
}

// sync runs the daemons (a Ready node without the daemon's annotations
// gets them, at its pool's rendered config) and then the node controller,
// which writes each pool's status from its nodes.
func (o *machineConfigOperator) sync(ctx context.Context) error {
	o.syncMu.Lock()
	defer o.syncMu.Unlock()
	return o.syncLocked(ctx)
}

func (o *machineConfigOperator) syncLocked(ctx context.Context) error {
	// An API that does not answer (etcd full or without quorum) must not
	// hold the simulator up for long.
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	nodes, err := o.hostNodes(ctx)
	if err != nil {
		return err
	}
	pools := poolNodes(nodes)
	for pool, members := range pools {
		for i, n := range members {
			if _, ok := n.Annotations[mcdCurrentConfig]; ok || !nodeIsReady(n) {
				continue
			}
			// The daemon's first start on the host.
			ann := map[string]string{mcdCurrentConfig: o.rendered[pool], mcdDesiredConfig: o.rendered[pool], mcdState: mcdStateDone, mcdReason: ""}
			annotated, err := o.annotate(ctx, n.Name, ann)
			if err != nil {
				return err
			}
			members[i] = annotated
		}
	}
	for _, pool := range machineConfigPools {
		if err := o.writeStatus(ctx, pool, pools[pool]); err != nil {
			return fmt.Errorf("machineconfigpool %s: %w", pool, err)
		}
	}
	return nil
}

// annotate sets annotations on a Node by a merge patch, which the
// kubelet's own writes of the Node (read, then update) do not undo.
func (o *machineConfigOperator) annotate(ctx context.Context, node string, ann map[string]string) (*corev1.Node, error) {
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": ann}})
	n, err := o.b.Kube.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, patch, metav1.PatchOptions{})
	if err != nil {
		return nil, fmt.Errorf("annotate node %s: %w", node, err)
	}
	return n, nil
}
