package health

import (
	"context"
	"encoding/json"
	"fmt"

	operatorv1 "github.com/openshift/api/operator/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/oc-recover/oc-recover/pkg/csr"
)

// apiChecks judges the kube-apiserver's own health (/readyz?verbose, as
// Check asked it first, and /livez), counts its instances and reads the
// aggregated APIs.
func apiChecks(ctx context.Context, c *cluster) []Result {
	rest := c.Kube.Discovery().RESTClient()
	probe := func(path string) (int, string, error) {
		var code int
		res := rest.Get().AbsPath(path).Param("verbose", "").Do(ctx).StatusCode(&code)
		body, err := res.Raw()
		if code != 0 {
			// An answer other than 200 is judged by its code and body.
			err = nil
		}
		return code, string(body), err
	}
	out := []Result{Readyz(c.readyz.code, c.readyz.body, c.readyz.err)}
	code, body, err := probe("/livez")
	out = append(out, Livez(code, body, err))

	nodes, nerr := c.Nodes(ctx)
	pods, perr := c.Kube.CoreV1().Pods("openshift-kube-apiserver").List(ctx, metav1.ListOptions{})
	switch {
	case nerr != nil:
		out = append(out, CouldNotRun("api.instances", nerr))
	case perr != nil:
		out = append(out, CouldNotRun("api.instances", perr))
	default:
		out = append(out, APIInstances(pods.Items, controlPlane(nodes)))
	}

	raw, err := rest.Get().AbsPath("/apis/apiregistration.k8s.io/v1/apiservices").DoRaw(ctx)
	if err != nil {
		return append(out, CouldNotRun("api.apiservices", err))
	}
	services, err := parseAPIServices(raw)
	if err != nil {
		return append(out, CouldNotRun("api.apiservices", err))
	}
	return append(out, APIServices(services))
}

// parseAPIServices reads what the check needs of an APIServiceList
// without the aggregator's client: each name and its Available condition.
func parseAPIServices(raw []byte) ([]APIService, error) {
	var list struct {
		Items []struct {
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
			Status struct {
				Conditions []struct {
					Type    string `json:"type"`
					Status  string `json:"status"`
					Reason  string `json:"reason"`
					Message string `json:"message"`
				} `json:"conditions"`
			} `json:"status"`
		} `json:"items"`
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, fmt.Errorf("read the APIServices: %w", err)
	}
	var out []APIService
	for _, it := range list.Items {
		s := APIService{Name: it.Metadata.Name}
		for _, cond := range it.Status.Conditions {
			if cond.Type == "Available" {
				s.Available, s.Reason, s.Message = cond.Status == "True", cond.Reason, cond.Message
			}
		}
		out = append(out, s)
	}
	return out, nil
}

func versionChecks(ctx context.Context, c *cluster) []Result {
	cv, err := c.Version(ctx)
	if err != nil {
		return failAll(err, "version")
	}
	return []Result{ClusterVersion(cv)}
}

func nodeChecks(ctx context.Context, c *cluster) []Result {
	nodes, err := c.Nodes(ctx)
	if err != nil {
		return failAll(err, "nodes.ready", "nodes.pressure")
	}
	// Without the leases the heartbeats alone are judged.
	var leases []coordinationv1.Lease
	if read, err := csr.ReadNodeLeases(ctx, c.Kube); err == nil {
		leases = append([]coordinationv1.Lease{}, read...)
	}
	return []Result{Nodes(nodes, leases, c.opts.Now), NodePressure(nodes)}
}

func operatorChecks(ctx context.Context, c *cluster) []Result {
	list, err := c.Config.ConfigV1().ClusterOperators().List(ctx, metav1.ListOptions{})
	if err != nil {
		return failAll(err, "co")
	}
	return []Result{ClusterOperators(list.Items, c.opts.Now)}
}

// staticPodChecks reads the four static-pod operators' status, and the
// etcd operator's overrides.
func staticPodChecks(ctx context.Context, c *cluster) []Result {
	ops := c.Operator.OperatorV1()
	var out []Result
	read := func(name string, get func() (*operatorv1.StaticPodOperatorStatus, error)) {
		st, err := get()
		if err != nil {
			out = append(out, CouldNotRun(StaticPodOperator(name, operatorv1.StaticPodOperatorStatus{}, c.opts.Now).ID, err))
			return
		}
		out = append(out, StaticPodOperator(name, *st, c.opts.Now))
	}
	etcdCR, etcdErr := c.EtcdCR(ctx)
	read("etcd", func() (*operatorv1.StaticPodOperatorStatus, error) {
		if etcdErr != nil {
			return nil, etcdErr
		}
		return &etcdCR.Status.StaticPodOperatorStatus, nil
	})
	read("kube-apiserver", func() (*operatorv1.StaticPodOperatorStatus, error) {
		o, err := ops.KubeAPIServers().Get(ctx, "cluster", metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		return &o.Status.StaticPodOperatorStatus, nil
	})
	read("kube-controller-manager", func() (*operatorv1.StaticPodOperatorStatus, error) {
		o, err := ops.KubeControllerManagers().Get(ctx, "cluster", metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		return &o.Status.StaticPodOperatorStatus, nil
	})
	read("kube-scheduler", func() (*operatorv1.StaticPodOperatorStatus, error) {
		o, err := ops.KubeSchedulers().Get(ctx, "cluster", metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		return &o.Status.StaticPodOperatorStatus, nil
	})
	if etcdErr != nil {
		return append(out, CouldNotRun("staticpods.overrides", etcdErr))
	}
	return append(out, QuorumGuardOverride(etcdCR))
}
