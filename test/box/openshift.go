package box

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	configv1 "github.com/openshift/api/config/v1"
	machinev1beta1 "github.com/openshift/api/machine/v1beta1"
	operatorv1 "github.com/openshift/api/operator/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

// openshiftCRDs are the CRDs (Default feature set) from the openshift/api
// module that the procedures read and write.
var openshiftCRDs = []string{
	"operator/v1/zz_generated.crd-manifests/0000_12_etcd_01_etcds-Default.crd.yaml",
	"operator/v1/zz_generated.crd-manifests/0000_20_kube-apiserver_01_kubeapiservers-Default.crd.yaml",
	"operator/v1/zz_generated.crd-manifests/0000_25_kube-controller-manager_01_kubecontrollermanagers.crd.yaml",
	"operator/v1/zz_generated.crd-manifests/0000_25_kube-scheduler_01_kubeschedulers.crd.yaml",
	"config/v1/zz_generated.crd-manifests/0000_00_cluster-version-operator_01_clusterversions-Default.crd.yaml",
	"config/v1/zz_generated.crd-manifests/0000_00_cluster-version-operator_01_clusteroperators.crd.yaml",
	"config/v1/zz_generated.crd-manifests/0000_03_config-operator_01_proxies.crd.yaml",
	"config/v1/zz_generated.crd-manifests/0000_10_config-operator_01_apiservers-Default.crd.yaml",
	"config/v1/zz_generated.crd-manifests/0000_10_config-operator_01_infrastructures-Default.crd.yaml",
	"machine/v1beta1/zz_generated.crd-manifests/0000_10_machine-api_01_machines-Default.crd.yaml",
	"machineconfiguration/v1/zz_generated.crd-manifests/0000_80_machine-config_01_machineconfigs.crd.yaml",
	"machineconfiguration/v1/zz_generated.crd-manifests/0000_80_machine-config_01_machineconfigpools.crd.yaml",
}

// openshiftNamespaces are the namespaces a 4.x control plane has.
var openshiftNamespaces = []string{
	"openshift", "openshift-config", "openshift-config-managed", "openshift-etcd", "openshift-etcd-operator",
	"openshift-kube-apiserver", "openshift-kube-apiserver-operator", "openshift-kube-controller-manager", "openshift-kube-scheduler",
	"openshift-machine-api", "openshift-machine-config-operator", "openshift-cluster-version",
}

// openshiftAPIDir finds the openshift/api module on disk, where its CRD
// manifests are (they are not embedded in any Go package).
func openshiftAPIDir() (string, error) {
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/openshift/api")
	cmd.Dir = moduleDir()
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("locate github.com/openshift/api: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

func (b *Box) installCRDs(ctx context.Context) error {
	dir, err := openshiftAPIDir()
	if err != nil {
		return err
	}
	client, err := apiextensionsclient.NewForConfig(b.loopback)
	if err != nil {
		return err
	}
	var names []string
	for _, rel := range openshiftCRDs {
		data, err := os.ReadFile(filepath.Join(dir, rel))
		if err != nil {
			return err
		}
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.Unmarshal(data, crd); err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		if _, err := client.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, crd, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create CRD %s: %w", crd.Name, err)
		}
		names = append(names, crd.Name)
	}
	return wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		for _, n := range names {
			crd, err := client.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, n, metav1.GetOptions{})
			if err != nil {
				return false, nil
			}
			established := false
			for _, c := range crd.Status.Conditions {
				if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
					established = true
				}
			}
			if !established {
				return false, nil
			}
		}
		return true, nil
	})
}

func (b *Box) createNamespaces(ctx context.Context) error {
	for _, ns := range openshiftNamespaces {
		obj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{"openshift.io/run-level": "0"}}}
		if _, err := b.Kube.CoreV1().Namespaces().Create(ctx, obj, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
	}
	return nil
}

// seedClusterConfig creates the cluster-scoped singletons: clusterversion
// with its install history, proxy, apiserver, infrastructure.
func (b *Box) seedClusterConfig(ctx context.Context) error {
	installed := metav1.NewTime(time.Now().Add(-b.opts.InstalledAgo).Truncate(time.Second))
	completed := metav1.NewTime(installed.Add(35 * time.Minute))
	image := "quay.io/openshift-release-dev/ocp-release@sha256:" + strings.Repeat("ab", 32)
	cv := &configv1.ClusterVersion{
		ObjectMeta: metav1.ObjectMeta{Name: "version"},
		Spec:       configv1.ClusterVersionSpec{ClusterID: configv1.ClusterID(b.ClusterID), Channel: "stable-4.14"},
	}
	cv, err := b.Config.ConfigV1().ClusterVersions().Create(ctx, cv, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create clusterversion: %w", err)
	}
	cv.Status = configv1.ClusterVersionStatus{
		Desired: configv1.Release{Version: b.opts.Version, Image: image},
		History: []configv1.UpdateHistory{{State: configv1.CompletedUpdate, StartedTime: installed, CompletionTime: &completed,
			Version: b.opts.Version, Image: image, Verified: false}},
		ObservedGeneration: cv.Generation,
		VersionHash:        "box-" + b.opts.Version,
		Conditions: []configv1.ClusterOperatorStatusCondition{
			{Type: configv1.OperatorAvailable, Status: configv1.ConditionTrue, LastTransitionTime: completed, Message: "Done applying " + b.opts.Version},
			{Type: configv1.OperatorProgressing, Status: configv1.ConditionFalse, LastTransitionTime: completed, Message: "Cluster version is " + b.opts.Version},
			{Type: "Failing", Status: configv1.ConditionFalse, LastTransitionTime: completed},
		},
	}
	if _, err := b.Config.ConfigV1().ClusterVersions().UpdateStatus(ctx, cv, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("clusterversion status: %w", err)
	}
	if _, err := b.Config.ConfigV1().Proxies().Create(ctx, &configv1.Proxy{ObjectMeta: metav1.ObjectMeta{Name: "cluster"}}, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create proxy: %w", err)
	}
	if _, err := b.Config.ConfigV1().APIServers().Create(ctx, &configv1.APIServer{ObjectMeta: metav1.ObjectMeta{Name: "cluster"}}, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create apiserver config: %w", err)
	}
	infra, err := b.Config.ConfigV1().Infrastructures().Create(ctx, &configv1.Infrastructure{ObjectMeta: metav1.ObjectMeta{Name: "cluster"}}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create infrastructure: %w", err)
	}
	infra.Status = configv1.InfrastructureStatus{InfrastructureName: b.InfraID, APIServerURL: b.APIServerURL, APIServerInternalURL: b.APIServerURL,
		ControlPlaneTopology: configv1.HighlyAvailableTopologyMode, InfrastructureTopology: configv1.HighlyAvailableTopologyMode,
		PlatformStatus: &configv1.PlatformStatus{Type: configv1.NonePlatformType}}
	if _, err := b.Config.ConfigV1().Infrastructures().UpdateStatus(ctx, infra, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("infrastructure status: %w", err)
	}
	return nil
}

// seedEtcdSecrets creates what the etcd operator keeps in openshift-etcd:
// the client identity, the CA bundle and every member's certificates.
func (b *Box) seedEtcdSecrets(ctx context.Context) error {
	objs := []*corev1.Secret{b.etcdTLSSecret("etcd-client", b.etcdPKI.client)}
	for _, n := range b.masters() {
		for _, kind := range etcdCertKinds {
			ck, err := b.etcdPKI.secretCert(kind, n.Name, n.IP)
			if err != nil {
				return err
			}
			objs = append(objs, b.etcdTLSSecret("etcd-"+kind+"-"+n.Name, ck))
		}
	}
	for _, s := range objs {
		if _, err := b.Kube.CoreV1().Secrets("openshift-etcd").Create(ctx, s, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("secret %s: %w", s.Name, err)
		}
	}
	clientCA := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "client-ca", Namespace: "openshift-kube-apiserver"},
		Data: map[string]string{"ca-bundle.crt": string(b.ClientCABundle())}}
	if _, err := b.Kube.CoreV1().ConfigMaps(clientCA.Namespace).Create(ctx, clientCA, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("configmap %s/%s: %w", clientCA.Namespace, clientCA.Name, err)
	}
	for _, name := range []string{"etcd-ca-bundle", "etcd-serving-ca", "etcd-peer-client-ca"} {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "openshift-etcd"},
			Data: map[string]string{"ca-bundle.crt": string(b.etcdPKI.ca.CertPEM)}}
		if _, err := b.Kube.CoreV1().ConfigMaps("openshift-etcd").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("configmap %s: %w", name, err)
		}
	}
	return nil
}

// etcdTLSSecret is a kubernetes.io/tls secret of openshift-etcd, annotated
// as the release's etcd operator annotates it (etcdannotations.go).
func (b *Box) etcdTLSSecret(name string, ck *CertKey) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "openshift-etcd", Annotations: b.etcdSecretAnnotations(ck, "etcd certificate "+name)},
		Type: corev1.SecretTypeTLS, Data: map[string][]byte{corev1.TLSCertKey: ck.CertPEM, corev1.TLSPrivateKeyKey: ck.KeyPEM}}
}

// seedOperators creates the static-pod operators' singletons at their
// current revisions, every node at the latest.
func (b *Box) seedOperators(ctx context.Context) error {
	for _, op := range staticPodOperators {
		if err := b.createStaticPodOperator(ctx, op); err != nil {
			return err
		}
	}
	return nil
}

// staticPodOperator names one of the four operators whose operands are
// static pods on every control-plane node.
type staticPodOperator struct {
	Resource  string // etcd, kubeapiserver, ...
	Pod       string // static pod (and resource dir) name: etcd, kube-apiserver, ...
	Namespace string
	Revision  int32
}

var staticPodOperators = []staticPodOperator{
	{Resource: "etcd", Pod: "etcd", Namespace: "openshift-etcd", Revision: 3},
	{Resource: "kubeapiserver", Pod: "kube-apiserver", Namespace: "openshift-kube-apiserver", Revision: 7},
	{Resource: "kubecontrollermanager", Pod: "kube-controller-manager", Namespace: "openshift-kube-controller-manager", Revision: 8},
	{Resource: "kubescheduler", Pod: "kube-scheduler", Namespace: "openshift-kube-scheduler", Revision: 6},
}

func (b *Box) createStaticPodOperator(ctx context.Context, op staticPodOperator) error {
	meta := metav1.ObjectMeta{Name: "cluster"}
	spec := operatorv1.StaticPodOperatorSpec{OperatorSpec: operatorv1.OperatorSpec{ManagementState: operatorv1.Managed}}
	// A node status may not be created with currentRevision set (a CEL rule
	// of the CRD), so the status is written in two steps, as the operators do.
	var nodesNew, nodesAtRevision []operatorv1.NodeStatus
	for _, n := range b.masters() {
		nodesNew = append(nodesNew, operatorv1.NodeStatus{NodeName: n.Name})
		nodesAtRevision = append(nodesAtRevision, operatorv1.NodeStatus{NodeName: n.Name, CurrentRevision: op.Revision})
	}
	now := metav1.Now()
	status := func(nodes []operatorv1.NodeStatus) operatorv1.StaticPodOperatorStatus {
		return operatorv1.StaticPodOperatorStatus{
			OperatorStatus: operatorv1.OperatorStatus{
				LatestAvailableRevision: op.Revision,
				Conditions: []operatorv1.OperatorCondition{{Type: "NodeInstallerProgressing", Status: operatorv1.ConditionFalse,
					Reason: "AllNodesAtLatestRevision", Message: fmt.Sprintf("%d nodes are at revision %d", len(nodes), op.Revision), LastTransitionTime: now}},
			},
			NodeStatuses: nodes,
		}
	}
	ops := b.Operator.OperatorV1()
	switch op.Resource {
	case "etcd":
		obj, err := ops.Etcds().Create(ctx, &operatorv1.Etcd{ObjectMeta: meta, Spec: operatorv1.EtcdSpec{StaticPodOperatorSpec: spec}}, metav1.CreateOptions{})
		if err != nil {
			return err
		}
		for _, nodes := range [][]operatorv1.NodeStatus{nodesNew, nodesAtRevision} {
			obj.Status.StaticPodOperatorStatus = status(nodes)
			if obj, err = ops.Etcds().UpdateStatus(ctx, obj, metav1.UpdateOptions{}); err != nil {
				return fmt.Errorf("etcd status: %w", err)
			}
		}
	case "kubeapiserver":
		obj, err := ops.KubeAPIServers().Create(ctx, &operatorv1.KubeAPIServer{ObjectMeta: meta, Spec: operatorv1.KubeAPIServerSpec{StaticPodOperatorSpec: spec}}, metav1.CreateOptions{})
		if err != nil {
			return err
		}
		for _, nodes := range [][]operatorv1.NodeStatus{nodesNew, nodesAtRevision} {
			obj.Status.StaticPodOperatorStatus = status(nodes)
			if obj, err = ops.KubeAPIServers().UpdateStatus(ctx, obj, metav1.UpdateOptions{}); err != nil {
				return fmt.Errorf("kubeapiserver status: %w", err)
			}
		}
	case "kubecontrollermanager":
		obj, err := ops.KubeControllerManagers().Create(ctx, &operatorv1.KubeControllerManager{ObjectMeta: meta, Spec: operatorv1.KubeControllerManagerSpec{StaticPodOperatorSpec: spec}}, metav1.CreateOptions{})
		if err != nil {
			return err
		}
		for _, nodes := range [][]operatorv1.NodeStatus{nodesNew, nodesAtRevision} {
			obj.Status.StaticPodOperatorStatus = status(nodes)
			if obj, err = ops.KubeControllerManagers().UpdateStatus(ctx, obj, metav1.UpdateOptions{}); err != nil {
				return fmt.Errorf("kubecontrollermanager status: %w", err)
			}
		}
	case "kubescheduler":
		obj, err := ops.KubeSchedulers().Create(ctx, &operatorv1.KubeScheduler{ObjectMeta: meta, Spec: operatorv1.KubeSchedulerSpec{StaticPodOperatorSpec: spec}}, metav1.CreateOptions{})
		if err != nil {
			return err
		}
		for _, nodes := range [][]operatorv1.NodeStatus{nodesNew, nodesAtRevision} {
			obj.Status.StaticPodOperatorStatus = status(nodes)
			if obj, err = ops.KubeSchedulers().UpdateStatus(ctx, obj, metav1.UpdateOptions{}); err != nil {
				return fmt.Errorf("kubescheduler status: %w", err)
			}
		}
	}
	return nil
}

// createMachine creates the Machine API object of a node, as the installer
// leaves it: phase Running, instance running, nodeRef set, the machine
// controller's finalizer on it.
func (b *Box) createMachine(ctx context.Context, n *Node) error {
	role := "worker"
	if n.Master {
		role = "master"
	}
	providerSpec, _ := yaml.YAMLToJSON([]byte("apiVersion: machine.openshift.io/v1beta1\nkind: BoxMachineProviderConfig\ninstanceType: m6i.xlarge\n"))
	m := &machinev1beta1.Machine{
		ObjectMeta: metav1.ObjectMeta{Name: n.MachineName, Namespace: machineNamespace, Labels: map[string]string{
			"machine.openshift.io/cluster-api-cluster": b.InfraID, machineRoleLabel: role,
			"machine.openshift.io/cluster-api-machine-type": role},
			Annotations: map[string]string{instanceStateAnnotation: "running"},
			Finalizers:  []string{machinev1beta1.MachineFinalizer}},
		Spec: machinev1beta1.MachineSpec{
			ProviderID:   ptr.To("box:///" + n.Name),
			ProviderSpec: machinev1beta1.ProviderSpec{Value: &runtime.RawExtension{Raw: providerSpec}},
		},
	}
	created, err := b.Machine.MachineV1beta1().Machines("openshift-machine-api").Create(ctx, m, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create machine %s: %w", n.MachineName, err)
	}
	return b.setMachineInstanceState(ctx, created, n, "running")
}

// setMachineInstanceState reports a node's instance in its Machine: running
// or stopped, in the provider status and the instance-state annotation.
func (b *Box) setMachineInstanceState(ctx context.Context, m *machinev1beta1.Machine, n *Node, state string) error {
	m.Status.NodeRef = &corev1.ObjectReference{Kind: "Node", Name: n.Name}
	m.Status.Phase = ptr.To("Running")
	setMachineInstance(m, n, state)
	if _, err := b.Machine.MachineV1beta1().Machines(m.Namespace).UpdateStatus(ctx, m, metav1.UpdateOptions{}); err != nil {
		return err
	}
	if m.Annotations[instanceStateAnnotation] == state {
		return nil
	}
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, instanceStateAnnotation, state)
	_, err := b.Machine.MachineV1beta1().Machines(m.Namespace).Patch(ctx, m.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	return err
}

// annotateNodeMachine links a node to its Machine, as the machine API does.
func (b *Box) annotateNodeMachine(ctx context.Context, n *Node) error {
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:"%s/%s"}}}`, nodeMachineAnnotation, machineNamespace, n.MachineName)
	_, err := b.Kube.CoreV1().Nodes().Patch(ctx, n.Name, "application/merge-patch+json", []byte(patch), metav1.PatchOptions{})
	return err
}
