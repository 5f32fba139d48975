package box

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	machinev1beta1 "github.com/openshift/api/machine/v1beta1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

const (
	machineNamespace = "openshift-machine-api"
	// machineRoleLabel says whether a Machine is a control-plane host.
	machineRoleLabel = "machine.openshift.io/cluster-api-machine-role"
	// instanceStateAnnotation mirrors the provider's instance state.
	instanceStateAnnotation = "machine.openshift.io/instance-state"
	// nodeMachineAnnotation links a Node to its Machine.
	nodeMachineAnnotation = "machine.openshift.io/machine"
)

// machineController simulates the Machine API's machine controller on the
// box's "cloud", where an instance is a host of the box:
//
//   - a Machine with no nodeRef and no Node of its name (a new Machine) gets
//     the machine finalizer and phase Provisioning; then the instance is
//     created (a new host: sandbox, host tools, etcd certificates on a
//     control-plane host but no static pod, which the operators' installers
//     put there; a kubelet that registers the Node Ready), and the Machine
//     turns Provisioned with its providerID, addresses and instance state,
//     and Running with its nodeRef a moment later (runningDelay);
//   - a Machine being deleted turns Deleting; its instance is terminated
//     (the host's units, kubelet, containers and etcd member stop), its
//     Node and the pods bound there are deleted, its host is removed from
//     the box, and the finalizer is dropped. A host whose Machine vanished
//     without that (its finalizer removed by hand) is terminated too.
//
// Machines whose Node already exists without a host of the box (objects a
// benchmark creates by the thousand) are left alone.
type machineController struct {
	b            *Box
	period       time.Duration
	runningDelay time.Duration

	// hosts are the hosts this controller created, by Machine (a Machine
	// is provisioned once, however stale the watch's copy of it).
	hosts map[types.UID]*provisionedHost
	// ignored are Machines this controller does not provision.
	ignored map[types.UID]bool
}

type provisionedHost struct {
	node *Node
	// provisionedAt is when the Machine turned Provisioned (zero: not yet
	// written).
	provisionedAt time.Time
	running       bool
}

func (c *machineController) run(ctx context.Context) {
	if c.ignored == nil {
		c.ignored = map[types.UID]bool{}
	}
	everyRound(ctx, c.period, func(ctx context.Context) { c.sync(ctx) })
}

func (c *machineController) sync(ctx context.Context) {
	machines, err := c.b.machineLister().Machines(machineNamespace).List(labels.Everything())
	if err != nil {
		return
	}
	exists := map[string]bool{}
	for _, m := range machines {
		exists[m.Name] = true
		if ctx.Err() != nil {
			return
		}
		if m.DeletionTimestamp != nil {
			c.deleteMachine(ctx, m)
			continue
		}
		if err := c.reconcile(ctx, m); err != nil && ctx.Err() == nil {
			klogf("machine controller: %s: %v", m.Name, err)
		}
	}
	for _, n := range c.b.NodeList() {
		if n.MachineName != "" && !exists[n.MachineName] {
			klogf("machine controller: machine %s is gone: terminating its instance %s", n.MachineName, n.Name)
			c.terminate(ctx, n)
		}
	}
}

// machineHostName is the host a Machine's instance gets: the Machine's name
// without the infrastructure name (<infra>-master-3 -> master-3).
func (c *machineController) machineHostName(m *machinev1beta1.Machine) string {
	return strings.TrimPrefix(m.Name, c.b.InfraID+"-")
}

func (c *machineController) reconcile(ctx context.Context, m *machinev1beta1.Machine) error {
	if h := c.hosts[m.UID]; h != nil {
		if h.provisionedAt.IsZero() {
			return c.provisioned(ctx, m, h)
		}
		if h.running || time.Since(h.provisionedAt) < c.runningDelay {
			return nil
		}
		// The node has joined: the Machine runs.
		node, err := c.b.Kube.CoreV1().Nodes().Get(ctx, h.node.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		err = c.b.updateMachineStatus(ctx, m.Name, func(m *machinev1beta1.Machine) {
			m.Status.NodeRef = &corev1.ObjectReference{Kind: "Node", Name: node.Name, UID: node.UID}
			m.Status.Phase = ptr.To(machinev1beta1.PhaseRunning)
		})
		if err != nil {
			return err
		}
		h.running = true
		klogf("machine controller: %s is Running on node %s", m.Name, node.Name)
		return nil
	}
	if m.Status.NodeRef != nil || c.ignored[m.UID] {
		return nil
	}
	if !boxProvider(m) {
		// Another cloud's Machine (tests that announce new nodes by
		// Machine alone): this cloud cannot create its instance.
		c.ignored[m.UID] = true
		return nil
	}
	name := c.machineHostName(m)
	if c.b.Node(name) == nil {
		// A Node without an instance of the box. The watch of Nodes may lag
		// behind that of Machines: ask the API before creating a host.
		_, err := c.b.nodeLister().Get(name)
		if apierrors.IsNotFound(err) {
			_, err = c.b.Kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		}
		if err == nil {
			c.ignored[m.UID] = true
			return nil
		}
		if !apierrors.IsNotFound(err) {
			return err
		}
	}
	return c.provision(ctx, m, name)
}

// provision creates a new Machine's instance.
func (c *machineController) provision(ctx context.Context, m *machinev1beta1.Machine, name string) error {
	if err := c.b.updateMachine(ctx, m.Name, func(m *machinev1beta1.Machine) bool {
		for _, f := range m.Finalizers {
			if f == machinev1beta1.MachineFinalizer {
				return false
			}
		}
		m.Finalizers = append(m.Finalizers, machinev1beta1.MachineFinalizer)
		return true
	}); err != nil {
		return err
	}
	if err := c.b.updateMachineStatus(ctx, m.Name, func(m *machinev1beta1.Machine) {
		m.Status.Phase = ptr.To(machinev1beta1.PhaseProvisioning)
	}); err != nil {
		return err
	}
	master := m.Labels[machineRoleLabel] == "master"
	klogf("machine controller: %s is Provisioning: new host %s (control plane: %v)", m.Name, name, master)
	var n *Node
	var err error
	if c.b.Node(name) != nil {
		err = fmt.Errorf("a host named %s already exists", name)
	} else {
		n, err = c.b.newHost(ctx, name, master, m.Name)
	}
	if err != nil {
		c.ignored[m.UID] = true
		_ = c.b.updateMachineStatus(ctx, m.Name, func(m *machinev1beta1.Machine) {
			m.Status.Phase = ptr.To(machinev1beta1.PhaseFailed)
			m.Status.ErrorReason = ptr.To(machinev1beta1.CreateMachineError)
			m.Status.ErrorMessage = ptr.To(err.Error())
		})
		return err
	}
	h := &provisionedHost{node: n}
	c.hosts[m.UID] = h
	return c.provisioned(ctx, m, h)
}

// provisioned reports a new instance in its Machine: providerID, addresses,
// instance state, phase Provisioned; and links its Node to the Machine.
func (c *machineController) provisioned(ctx context.Context, m *machinev1beta1.Machine, h *provisionedHost) error {
	n := h.node
	if err := c.b.updateMachine(ctx, m.Name, func(m *machinev1beta1.Machine) bool {
		m.Spec.ProviderID = ptr.To("box:///" + n.Name)
		if m.Annotations == nil {
			m.Annotations = map[string]string{}
		}
		m.Annotations[instanceStateAnnotation] = "running"
		return true
	}); err != nil {
		return err
	}
	if err := c.b.updateMachineStatus(ctx, m.Name, func(m *machinev1beta1.Machine) {
		setMachineInstance(m, n, "running")
		m.Status.Phase = ptr.To(machinev1beta1.PhaseProvisioned)
	}); err != nil {
		return err
	}
	if err := c.b.annotateNodeMachine(ctx, n); err != nil {
		return err
	}
	h.provisionedAt = time.Now()
	return nil
}

// deleteMachine terminates a deleted Machine's instance and lets the
// Machine go.
func (c *machineController) deleteMachine(ctx context.Context, m *machinev1beta1.Machine) {
	ours := false
	for _, f := range m.Finalizers {
		ours = ours || f == machinev1beta1.MachineFinalizer
	}
	if !ours {
		return
	}
	if m.Status.Phase == nil || *m.Status.Phase != machinev1beta1.PhaseDeleting {
		if err := c.b.updateMachineStatus(ctx, m.Name, func(m *machinev1beta1.Machine) {
			m.Status.Phase = ptr.To(machinev1beta1.PhaseDeleting)
		}); err != nil {
			klogf("machine controller: %s: %v", m.Name, err)
			return
		}
	}
	for _, n := range c.b.NodeList() {
		if n.MachineName == m.Name {
			c.terminate(ctx, n)
		}
	}
	delete(c.hosts, m.UID)
	err := c.b.updateMachine(ctx, m.Name, func(m *machinev1beta1.Machine) bool {
		var kept []string
		for _, f := range m.Finalizers {
			if f != machinev1beta1.MachineFinalizer {
				kept = append(kept, f)
			}
		}
		changed := len(kept) != len(m.Finalizers)
		m.Finalizers = kept
		return changed
	})
	if err != nil && !apierrors.IsNotFound(err) && ctx.Err() == nil {
		klogf("machine controller: %s: remove finalizer: %v", m.Name, err)
		return
	}
	klogf("machine controller: %s deleted, instance %s terminated", m.Name, strings.TrimPrefix(m.Name, c.b.InfraID+"-"))
}

// terminate is the instance going away for good: the host powers off (its
// units, kubelet, containers and etcd member stop), its Node and the pods
// bound to it are deleted (as the node lifecycle and pod garbage
// collectors would), and the host leaves the box with its disk.
func (c *machineController) terminate(ctx context.Context, n *Node) {
	if n.agent != nil {
		n.agent.powerOff()
	}
	if n.stopAgent != nil {
		n.stopAgent()
	}
	if n.Kubelet != nil {
		n.Kubelet.Stop()
	}
	if n.Etcd != nil {
		n.Etcd.Stop()
	}
	core := c.b.Kube.CoreV1()
	if err := core.Nodes().Delete(ctx, n.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) && ctx.Err() == nil {
		klogf("machine controller: delete node %s: %v", n.Name, err)
	}
	pods, err := core.Pods("").List(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("spec.nodeName", n.Name).String()})
	if err == nil {
		for _, p := range pods.Items {
			_ = core.Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
		}
	}
	c.b.removeNode(n)
	_ = os.RemoveAll(filepath.Join(c.b.Dir, "nodes", n.Name))
	_ = os.RemoveAll(filepath.Join(c.b.Dir, "containers", n.Name))
}

// newHost creates and boots a new host for a Machine: the next free address
// in the box's subnet, a new sandbox with the host tools, on a control-plane
// host the etcd certificates and an etcd member that is nobody's yet, and a
// kubelet that registers the Node. No static pod: the operators' installers
// put them there.
func (b *Box) newHost(ctx context.Context, name string, master bool, machine string) (*Node, error) {
	b.nodesMu.Lock()
	index := b.nextHostIndex
	b.nextHostIndex++
	b.nodesMu.Unlock()
	if index > 254 {
		return nil, fmt.Errorf("no address left in %s0/24", b.subnet)
	}
	n := &Node{Name: name, IP: net.ParseIP(fmt.Sprintf("%s%d", b.subnet, index)), Master: master, MachineName: machine}
	dir := filepath.Join(b.Dir, "nodes", name)
	_ = os.RemoveAll(dir) // the disk of an earlier instance of the same name
	sb, err := NewSandbox(dir, name)
	if err != nil {
		return nil, err
	}
	n.Sandbox = sb
	masters := b.masters()
	if master {
		masters = append(masters, n)
	}
	if err := b.installHostTools(sb.Root, n, masters); err != nil {
		return nil, err
	}
	if master {
		n.Etcd = b.newNodeEtcdMember(n)
		if err := b.etcdPKI.writeMemberCerts(n.Etcd.certDir, n.Name, n.IP); err != nil {
			return nil, err
		}
		if err := b.writeEtcdHostCerts(sb.Root, masters); err != nil {
			return nil, err
		}
	}
	k, err := b.newKubelet(n)
	if err != nil {
		return nil, err
	}
	k.SetEtcd(n.Etcd)
	n.Kubelet = k
	b.addNode(n)
	b.startHostAgent(b.runCtx, n)
	if err := k.Start(ctx); err != nil {
		n.agent.powerOff()
		n.stopAgent()
		k.Stop()
		b.removeNode(n)
		_ = b.Kube.CoreV1().Nodes().Delete(ctx, n.Name, metav1.DeleteOptions{})
		return nil, err
	}
	return n, nil
}

// setMachineInstance writes what the provider reports of an instance.
func setMachineInstance(m *machinev1beta1.Machine, n *Node, state string) {
	providerStatus, _ := yaml.YAMLToJSON([]byte(fmt.Sprintf(
		"apiVersion: machine.openshift.io/v1beta1\nkind: BoxMachineProviderStatus\ninstanceId: i-%s\ninstanceState: %s\n", n.Name, state)))
	m.Status.ProviderStatus = &runtime.RawExtension{Raw: providerStatus}
	m.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: n.IP.String()},
		{Type: corev1.NodeInternalDNS, Address: n.Name}, {Type: corev1.NodeHostName, Address: n.Name}}
	now := metav1.Now()
	m.Status.LastUpdated = &now
}

// updateMachine changes a Machine (not its status) when mutate says so.
func (b *Box) updateMachine(ctx context.Context, name string, mutate func(*machinev1beta1.Machine) bool) error {
	machines := b.Machine.MachineV1beta1().Machines(machineNamespace)
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		m, err := machines.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if !mutate(m) {
			return nil
		}
		_, err = machines.Update(ctx, m, metav1.UpdateOptions{})
		return err
	})
}

// updateMachineStatus changes a Machine's status.
func (b *Box) updateMachineStatus(ctx context.Context, name string, mutate func(*machinev1beta1.Machine)) error {
	machines := b.Machine.MachineV1beta1().Machines(machineNamespace)
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		m, err := machines.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		mutate(m)
		_, err = machines.UpdateStatus(ctx, m, metav1.UpdateOptions{})
		return err
	})
}

// boxProvider reports whether the Machine's providerSpec is the box
// cloud's (kind BoxMachineProviderConfig, as createMachine writes it and a
// copy of such a Machine keeps).
func boxProvider(m *machinev1beta1.Machine) bool {
	if m.Spec.ProviderSpec.Value == nil {
		return false
	}
	var spec struct {
		Kind string `json:"kind"`
	}
	return json.Unmarshal(m.Spec.ProviderSpec.Value.Raw, &spec) == nil && spec.Kind == "BoxMachineProviderConfig"
}
