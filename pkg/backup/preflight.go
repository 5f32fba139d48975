package backup

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	configv1 "github.com/openshift/api/config/v1"
	configclient "github.com/openshift/client-go/config/clientset/versioned"
	operatorclient "github.com/openshift/client-go/operator/clientset/versioned"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/oc-recover/oc-recover/pkg/era"
	"github.com/oc-recover/oc-recover/pkg/exitcode"
	"github.com/oc-recover/oc-recover/pkg/openshift"
)

// FirstRotationGuard is how long after installation a backup is refused
// (without --force): the control plane's first certificate rotation happens
// in the first 24 hours, and a backup from before it cannot be restored
// after it (OpenShift 4.5 documentation, Backup and restore, 1.1 "Backing
// up etcd data").
const FirstRotationGuard = 24 * time.Hour

// Clients are the API clients a backup needs.
type Clients struct {
	Kube            kubernetes.Interface
	OpenShiftConfig configclient.Interface
	Operator        operatorclient.Interface
}

// Cluster is what pre-flight learned about the cluster.
type Cluster struct {
	ID                 string
	InfrastructureName string
	Version            string
	InstalledAt        time.Time
	// ProxyEnv is exported into the host command (HTTP_PROXY, HTTPS_PROXY,
	// NO_PROXY) when the cluster-wide proxy is on.
	ProxyEnv map[string]string
	// Encryption is the apiserver's etcd encryption type, "" when off.
	Encryption string
	Node       string
	// Forced lists the checks --force overrode.
	Forced []string
	// Rollouts are the static-pod operators found rolling out; a backup
	// then is possibly dirty, and is taken only with --force.
	Rollouts []Rollout
	// Dirty: the backup is taken during a rollout (--force); the host
	// script is given --force where it takes it, which names the files
	// __POSSIBLY_DIRTY__, and backup.json records it either way.
	Dirty bool
}

// PreflightOptions are what the user asked of a backup's pre-flight.
type PreflightOptions struct {
	// Node is --node: the control-plane node to take the backup on; empty
	// picks the first fit one.
	Node string
	// Force is --force: take the backup within 24 hours of installation, or
	// during a rollout.
	Force bool
	Now   time.Time
	// Command is how the user runs the plugin ("oc recover"), for advice.
	Command string
	// ForceAdvice replaces the advice to pass --force during a rollout,
	// for commands that take a backup on the way and whose --force means
	// something else.
	ForceAdvice string
}

// ControlPlaneNode is one control-plane node and why it may or may not serve
// a backup.
type ControlPlaneNode struct {
	Name    string
	Healthy bool
	Reason  string // why not healthy
}

// Preflight checks everything that can be checked before touching a host.
func Preflight(ctx context.Context, c Clients, o PreflightOptions) (*Cluster, error) {
	force, now := o.Force, o.Now
	if err := RequireClusterAdmin(ctx, c.Kube, "a backup"); err != nil {
		return nil, err
	}
	cl := &Cluster{}
	cv, err := c.OpenShiftConfig.ConfigV1().ClusterVersions().Get(ctx, "version", metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("read clusterversion/version (is this an OpenShift 4 cluster?): %w", err)
	}
	cl.ID = string(cv.Spec.ClusterID)
	cl.Version, cl.InstalledAt = clusterVersion(cv)
	if cl.Version == "" {
		return nil, era.ErrNoVersion
	}
	if age := now.Sub(cl.InstalledAt); !cl.InstalledAt.IsZero() && age < FirstRotationGuard {
		if !force {
			return nil, fmt.Errorf("the cluster was installed %s ago (%s): a backup taken before the first certificate rotation, within 24 hours of installation, cannot be restored after it; wait until %s, or pass --force to take it anyway",
				age.Round(time.Minute), cl.InstalledAt.UTC().Format(time.RFC3339), cl.InstalledAt.Add(FirstRotationGuard).UTC().Format(time.RFC3339))
		}
		cl.Forced = append(cl.Forced, fmt.Sprintf("backup within 24h of installation (installed %s ago)", age.Round(time.Minute)))
	}
	if infra, err := c.OpenShiftConfig.ConfigV1().Infrastructures().Get(ctx, "cluster", metav1.GetOptions{}); err == nil {
		cl.InfrastructureName = infra.Status.InfrastructureName
	}
	proxy, err := c.OpenShiftConfig.ConfigV1().Proxies().Get(ctx, "cluster", metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("read proxy/cluster: %w", err)
	}
	cl.ProxyEnv = proxyEnv(proxy)
	if apiserver, err := c.OpenShiftConfig.ConfigV1().APIServers().Get(ctx, "cluster", metav1.GetOptions{}); err == nil {
		if t := apiserver.Spec.Encryption.Type; t != "" && t != configv1.EncryptionTypeIdentity {
			cl.Encryption = string(t)
		}
	}
	if cl.Rollouts, err = Rollouts(ctx, c.OpenShiftConfig); err != nil {
		return nil, err
	}
	if len(cl.Rollouts) > 0 {
		if !force {
			return nil, rolloutRefusal(cl.Rollouts, o.Command, o.ForceAdvice)
		}
		var what []string
		for _, r := range cl.Rollouts {
			what = append(what, r.String())
		}
		cl.Dirty = true
		cl.Forced = append(cl.Forced, "backup during a rollout, marked possibly dirty: "+strings.Join(what, "; "))
	}
	nodes, err := ControlPlaneNodes(ctx, c, scriptUsesLocalAPI(cl.Version))
	if err != nil {
		return nil, err
	}
	cl.Node, err = chooseNode(nodes, o.Node)
	return cl, err
}

// RequireClusterAdmin asks the API whether the user may do anything at all,
// which is what cluster-admin means; what names the command for the refusal.
func RequireClusterAdmin(ctx context.Context, kube kubernetes.Interface, what string) error {
	review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
		ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: "*", Group: "*", Resource: "*"}}}
	resp, err := kube.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("check access: %w", err)
	}
	if !resp.Status.Allowed {
		return fmt.Errorf("%s needs the cluster-admin role, and the current user lacks it; log in as a cluster administrator (oc login, or a kubeconfig with cluster-admin)", what)
	}
	return nil
}

// clusterVersion returns the version the cluster runs (the newest completed
// update) and when it was installed (the oldest history entry).
func clusterVersion(cv *configv1.ClusterVersion) (string, time.Time) {
	version, _ := era.Version(cv)
	var installed time.Time
	if n := len(cv.Status.History); n > 0 {
		installed = cv.Status.History[n-1].StartedTime.Time
	}
	return version, installed
}

func proxyEnv(p *configv1.Proxy) map[string]string {
	env := map[string]string{}
	if p == nil {
		return env
	}
	pick := func(status, spec string) string {
		if status != "" {
			return status
		}
		return spec
	}
	if v := pick(p.Status.HTTPProxy, p.Spec.HTTPProxy); v != "" {
		env["HTTP_PROXY"] = v
	}
	if v := pick(p.Status.HTTPSProxy, p.Spec.HTTPSProxy); v != "" {
		env["HTTPS_PROXY"] = v
	}
	if v := pick(p.Status.NoProxy, p.Spec.NoProxy); v != "" {
		env["NO_PROXY"] = v
	}
	return env
}

// ControlPlaneNodes lists the control-plane nodes with their fitness for a
// backup: node Ready, etcd pod running with every container ready, the
// member not reported unhealthy by the etcd operator (OpenShift 4.5
// documentation, Backup and restore, 2.2 "Identifying an unhealthy etcd
// member"), and, when localAPI says the host script reads the cluster
// through the node's own kube-apiserver, that kube-apiserver pod running
// and ready.
func ControlPlaneNodes(ctx context.Context, c Clients, localAPI bool) ([]ControlPlaneNode, error) {
	nodes, err := openshift.ControlPlaneNodes(ctx, c.Kube)
	if err != nil {
		return nil, err
	}
	pods, err := c.Kube.CoreV1().Pods("openshift-etcd").List(ctx, metav1.ListOptions{LabelSelector: "app=etcd"})
	if err != nil {
		return nil, fmt.Errorf("list etcd pods: %w", err)
	}
	podByNode := map[string]*corev1.Pod{}
	for i := range pods.Items {
		podByNode[pods.Items[i].Spec.NodeName] = &pods.Items[i]
	}
	apiservers := map[string]*corev1.Pod{}
	if localAPI {
		list, err := c.Kube.CoreV1().Pods("openshift-kube-apiserver").List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, fmt.Errorf("list kube-apiserver pods: %w", err)
		}
		for i := range list.Items {
			apiservers[list.Items[i].Name] = &list.Items[i]
		}
	}
	unhealthy := map[string]bool{}
	if etcd, err := c.Operator.OperatorV1().Etcds().Get(ctx, "cluster", metav1.GetOptions{}); err == nil {
		unhealthy = openshift.UnhealthyMembers(openshift.EtcdMembersAvailable(etcd))
	}
	var out []ControlPlaneNode
	for _, n := range nodes {
		cp := ControlPlaneNode{Name: n.Name, Healthy: true}
		switch {
		case !openshift.NodeReady(&n):
			cp.Healthy, cp.Reason = false, "node not Ready"
		case podByNode[n.Name] == nil:
			cp.Healthy, cp.Reason = false, "no etcd pod"
		case !podReady(podByNode[n.Name]):
			cp.Healthy, cp.Reason = false, "etcd pod "+podByNode[n.Name].Name+" not running and ready"
		case unhealthy[n.Name]:
			cp.Healthy, cp.Reason = false, "etcd member unhealthy"
		case localAPI && !podReady(apiservers["kube-apiserver-"+n.Name]):
			cp.Healthy, cp.Reason = false, "its own kube-apiserver (pod kube-apiserver-"+n.Name+") is not running and ready, and the backup script reads the cluster operators through it"
		}
		out = append(out, cp)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func podReady(p *corev1.Pod) bool {
	if p == nil || p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil {
		return false
	}
	for _, cs := range p.Status.ContainerStatuses {
		if !cs.Ready {
			return false
		}
	}
	return len(p.Status.ContainerStatuses) > 0
}

// chooseNode picks the node to back up from: the one asked for, which must
// be a healthy control-plane node, or the first healthy one.
func chooseNode(nodes []ControlPlaneNode, want string) (string, error) {
	var names []string
	for _, n := range nodes {
		names = append(names, n.Name)
	}
	if want != "" {
		for _, n := range nodes {
			if n.Name != want {
				continue
			}
			if !n.Healthy {
				return "", fmt.Errorf("control-plane node %s cannot take a backup: %s; choose another with --node (control-plane nodes: %s)", want, n.Reason, strings.Join(names, ", "))
			}
			return want, nil
		}
		return "", exitcode.Usagef("--node %s is not a control-plane node; a backup runs on one of: %s", want, strings.Join(names, ", "))
	}
	for _, n := range nodes {
		if n.Healthy {
			return n.Name, nil
		}
	}
	var why []string
	for _, n := range nodes {
		why = append(why, n.Name+": "+n.Reason)
	}
	if len(why) == 0 {
		return "", fmt.Errorf("no control-plane node found (no node labelled node-role.kubernetes.io/master or node-role.kubernetes.io/control-plane)")
	}
	return "", fmt.Errorf("no healthy control-plane node to take a backup on (%s); if etcd has lost quorum, see the restore procedure", strings.Join(why, "; "))
}
