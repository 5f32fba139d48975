package member

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	machinev1beta1 "github.com/openshift/api/machine/v1beta1"
	operatorv1 "github.com/openshift/api/operator/v1"
	machineclient "github.com/openshift/client-go/machine/clientset/versioned"
	operatorclient "github.com/openshift/client-go/operator/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/oc-recover/oc-recover/pkg/etcd"
	"github.com/oc-recover/oc-recover/pkg/openshift"
)

// Clients are what gathering the members' state needs.
type Clients struct {
	Kube     kubernetes.Interface
	Machine  machineclient.Interface
	Operator operatorclient.Interface
	REST     *rest.Config
	// Detail also reads, through the same etcd pod, every member's
	// endpoint status and the raised alarms, into Report.Detail (for oc
	// recover health): one exec and one etcd request more.
	Detail bool
	// Read is what the caller has already read, so that Gather does not
	// read it again; nil reads everything.
	Read *Read
}

// Read is the cluster as a caller read it: every node, every Machine (nil
// where the Machine API is not served) and etcd/cluster.
type Read struct {
	Nodes    []corev1.Node
	Machines []machinev1beta1.Machine
	Etcd     *operatorv1.Etcd
}

// Detail is what Gather reads of etcd beyond membership and health when
// asked (Clients.Detail). An error says why that part could not be read.
type Detail struct {
	// Pods are the etcd pods, running or not.
	Pods      []corev1.Pod
	Members   []etcd.Member
	Status    map[string]etcd.Status // by client URL
	StatusErr error
	Alarms    []etcd.Alarm
	AlarmsErr error
}

// Gather reads the state of every control-plane node's etcd member: its
// Machine, Node, etcd pod, and from etcd itself its ID, URLs and health.
// It makes a fixed number of API requests, whatever the cluster's size: a
// list each of machines and etcd pods, two of control-plane nodes (one per
// label), the etcd operator's CR, the client secret and CA, one
// port-forward and one exec; with c.Read, only the last four.
func Gather(ctx context.Context, c Clients, command string) (*Report, error) {
	read := c.Read
	if read == nil {
		var err error
		if read, err = readCluster(ctx, c); err != nil {
			return nil, err
		}
	}
	var nodes []corev1.Node
	for i := range read.Nodes {
		if openshift.IsControlPlane(&read.Nodes[i]) {
			nodes = append(nodes, read.Nodes[i])
		}
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Name < nodes[j].Name })
	pods, err := c.Kube.CoreV1().Pods(etcd.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "app=etcd"})
	if err != nil {
		return nil, fmt.Errorf("list etcd pods: %w", err)
	}
	machineByNode := map[string]*machinev1beta1.Machine{}
	for i := range read.Machines {
		m := &read.Machines[i]
		if ref := m.Status.NodeRef; ref != nil && m.Labels[masterRoleLabel] == "master" {
			machineByNode[ref.Name] = m
		}
	}
	r := &Report{}
	if read.Etcd != nil {
		r.EtcdMembersAvailable = openshift.EtcdMembersAvailable(read.Etcd)
	}
	podByNode := map[string]*corev1.Pod{}
	for i := range pods.Items {
		podByNode[pods.Items[i].Spec.NodeName] = &pods.Items[i]
	}

	var detail *Detail
	if c.Detail {
		detail = &Detail{Pods: pods.Items}
		r.Detail = detail
	}
	members, health, reached, etcdErr := readEtcd(ctx, c, pods.Items, detail)
	r.ReachedThrough = reached
	if detail != nil {
		detail.Members = members
		if etcdErr != nil && detail.StatusErr == nil {
			detail.StatusErr = etcdErr
		}
	}

	nodeNames := map[string]bool{}
	for i := range nodes {
		n := &nodes[i]
		nodeNames[n.Name] = true
		s := Status{Node: n.Name}
		s.NodeReady, s.Unreachable = string(openshift.NodeReadyStatus(n)), openshift.NodeUnreachable(n)
		if m := machineByNode[n.Name]; m != nil {
			s.Machine = m.Name
			if m.Status.Phase != nil {
				s.MachinePhase = *m.Status.Phase
			}
			s.InstanceState = instanceState(m)
		}
		if p := podByNode[n.Name]; p != nil {
			s.Pod = p.Name
			s.PodState, s.Restarts = podState(p)
		} else {
			s.PodState = "Missing"
		}
		r.Members = append(r.Members, s)
	}
	sort.Slice(r.Members, func(i, j int) bool { return r.Members[i].Node < r.Members[j].Node })
	for _, m := range members {
		s := Status{MemberID: etcd.MemberID(m.ID), PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs, Learner: m.IsLearner}
		s.Healthy, s.HealthError = memberHealth(m, health, etcdErr)
		placed := false
		for i := range r.Members {
			if r.Members[i].Node == m.Name && m.Name != "" {
				r.Members[i].MemberID, r.Members[i].PeerURLs, r.Members[i].ClientURLs, r.Members[i].Learner = s.MemberID, s.PeerURLs, s.ClientURLs, s.Learner
				r.Members[i].Healthy, r.Members[i].HealthError = s.Healthy, s.HealthError
				placed = true
			}
		}
		if !placed {
			s.Node = m.Name
			s.Diagnosis = Unknown
			r.ExtraMembers = append(r.ExtraMembers, s)
		}
	}
	if etcdErr != nil {
		for i := range r.Members {
			if r.Members[i].HealthError == "" {
				r.Members[i].HealthError = etcdErr.Error()
			}
		}
	}
	r.Command = command
	Decide(r)
	return r, nil
}

const masterRoleLabel = "machine.openshift.io/cluster-api-machine-role"

// readCluster reads what Gather needs besides etcd: the control-plane
// nodes, the control-plane Machines (none without the Machine API) and
// etcd/cluster (nil when it cannot be read: the report goes without the
// operator's summary).
func readCluster(ctx context.Context, c Clients) (*Read, error) {
	nodes, err := openshift.ControlPlaneNodes(ctx, c.Kube)
	if err != nil {
		return nil, err
	}
	read := &Read{Nodes: nodes}
	if c.Machine != nil {
		machines, err := c.Machine.MachineV1beta1().Machines("openshift-machine-api").List(ctx, metav1.ListOptions{
			LabelSelector: masterRoleLabel + "=master"})
		switch {
		case err == nil:
			read.Machines = machines.Items
		case apierrors.IsNotFound(err):
			// No Machine API (user-provisioned hosts): nothing to report.
		default:
			return nil, fmt.Errorf("list machines: %w", err)
		}
	}
	if cr, err := c.Operator.OperatorV1().Etcds().Get(ctx, "cluster", metav1.GetOptions{}); err == nil {
		read.Etcd = cr
	}
	return read, nil
}

// readEtcd lists the members through a port-forward to a running etcd pod
// (serializable, so a member without quorum still answers), and asks that
// pod's etcdctl for every voting member's health (etcd.EndpointHealth);
// with detail, also for every member's status, and etcd for its alarms.
func readEtcd(ctx context.Context, c Clients, pods []corev1.Pod, detail *Detail) ([]etcd.Member, map[string]etcd.Health, string, error) {
	running := etcd.RunningPods(pods)
	if len(running) == 0 {
		return nil, nil, "", fmt.Errorf("no etcd pod is running")
	}
	tlsConfig, err := etcd.ClientTLS(ctx, c.Kube)
	if err != nil {
		return nil, nil, "", err
	}
	conn, err := etcd.Connect(ctx, c.Kube, c.REST, tlsConfig, running)
	if err != nil {
		return nil, nil, "", err
	}
	defer conn.Close()
	members, err := conn.Members(ctx)
	if err != nil {
		return nil, nil, conn.Pod, err
	}
	var endpoints []string
	for _, m := range members {
		if len(m.ClientURLs) > 0 && !m.IsLearner {
			endpoints = append(endpoints, m.ClientURLs[0])
		}
	}
	if detail != nil {
		detail.Alarms, detail.AlarmsErr = conn.Alarms(ctx)
		if len(endpoints) > 0 {
			detail.Status, detail.StatusErr = etcd.EndpointStatus(ctx, c.Kube, c.REST, conn.Pod, endpoints)
		}
	}
	if len(endpoints) == 0 {
		return members, map[string]etcd.Health{}, conn.Pod, nil
	}
	health, err := etcd.EndpointHealth(ctx, c.Kube, c.REST, conn.Pod, endpoints)
	if err != nil {
		return members, nil, conn.Pod, err
	}
	return members, health, conn.Pod, nil
}

func memberHealth(m etcd.Member, health map[string]etcd.Health, etcdErr error) (*bool, string) {
	if health == nil || len(m.ClientURLs) == 0 {
		if len(m.ClientURLs) == 0 {
			f := false
			return &f, "member added but not started (no client URL)"
		}
		if etcdErr != nil {
			return nil, etcdErr.Error()
		}
		return nil, "health not known"
	}
	h, ok := health[m.ClientURLs[0]]
	if !ok {
		return nil, "health not reported"
	}
	// etcdctl reports a member that answered its read as unhealthy while
	// any alarm is raised ("Active Alarm(s): NOSPACE"). The member serves
	// and counts for quorum: a full database is made smaller and the alarm
	// disarmed, no member replaced (oc recover health judges the alarms).
	healthy := h.Health || strings.HasPrefix(h.Error, AlarmHealthPrefix)
	return &healthy, h.Error
}

// AlarmHealthPrefix starts etcdctl's health error for a member that
// answered while an alarm is raised.
const AlarmHealthPrefix = "Active Alarm(s)"

// instanceState reads providerStatus.instanceState, which every cloud's
// provider status carries under that name.
func instanceState(m *machinev1beta1.Machine) string {
	if m.Status.ProviderStatus == nil || len(m.Status.ProviderStatus.Raw) == 0 {
		return ""
	}
	var ps struct {
		InstanceState *string `json:"instanceState"`
	}
	if err := json.Unmarshal(m.Status.ProviderStatus.Raw, &ps); err != nil || ps.InstanceState == nil {
		return ""
	}
	return strings.ToLower(*ps.InstanceState)
}

// podState is what `oc get pods` shows in STATUS for the etcd pod, and the
// etcd container's restarts.
func podState(p *corev1.Pod) (string, int32) {
	var restarts int32
	state := string(p.Status.Phase)
	allReady := len(p.Status.ContainerStatuses) > 0
	for _, cs := range p.Status.ContainerStatuses {
		allReady = allReady && cs.Ready
		if cs.Name != "etcd" {
			continue
		}
		restarts = cs.RestartCount
		switch {
		case cs.State.Waiting != nil && cs.State.Waiting.Reason != "" && cs.State.Waiting.Reason != "ContainerCreating":
			state = cs.State.Waiting.Reason
		case cs.State.Terminated != nil:
			state = cs.State.Terminated.Reason
			if state == "" {
				state = "Error"
			}
		}
	}
	if state == string(corev1.PodRunning) && !allReady {
		state = "NotReady"
	}
	if p.DeletionTimestamp != nil {
		state = "Terminating"
	}
	return state, restarts
}
