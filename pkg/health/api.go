package health

import (
	"fmt"
	"net/http"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// KubeAPIServerNamespace holds the kube-apiserver's static pods, one per
// control-plane node, named kube-apiserver-<node> (the kubelet names a
// static pod's mirror after its node).
const KubeAPIServerNamespace = "openshift-kube-apiserver"

// Readyz judges the answer to GET /readyz?verbose: FAIL when the API could
// not be reached or does not answer 200, WARN for any check it lists as
// failed ("[-]<name> failed"). Livez judges /livez the same way; they are
// two results so that each names its own endpoint.
func Readyz(code int, body string, err error) Result {
	return probe("api.readyz", "/readyz", code, body, err)
}

// Livez judges the answer to GET /livez?verbose as Readyz does /readyz.
func Livez(code int, body string, err error) Result {
	return probe("api.livez", "/livez", code, body, err)
}

func probe(id, path string, code int, body string, err error) Result {
	r := Result{ID: id, Severity: OK, Summary: path + " answers ok"}
	if err != nil {
		r.Severity = Fail
		r.Summary = fmt.Sprintf("%s: not reached: %v", path, err)
		r.Fix = "check that a kube-apiserver runs: `oc get pods -n " + KubeAPIServerNamespace + " -o wide`; on a host, `crictl ps --name kube-apiserver`"
		return r
	}
	for _, line := range strings.Split(body, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "[-]")
		if !ok {
			continue
		}
		if f := strings.Fields(rest); len(f) > 0 {
			r.Evidence = append(r.Evidence, f[0]+" failed")
		}
	}
	sort.Strings(r.Evidence)
	switch {
	case code != http.StatusOK:
		r.Severity = Fail
		r.Summary = fmt.Sprintf("%s answers %d", path, code)
	case len(r.Evidence) > 0:
		r.Severity = Warn
		r.Summary = fmt.Sprintf("%s answers ok, but %d check(s) failed", path, len(r.Evidence))
	default:
		return r
	}
	r.Fix = fmt.Sprintf("see `oc get --raw '%s?verbose'`; a failing etcd check: `oc recover member status`", path)
	return r
}

// APIInstances fails when a control-plane node (controlPlane names them)
// has, among the pods of openshift-kube-apiserver, no kube-apiserver pod that runs with every container ready: each
// node's instance serves the API behind the load balancer, and a missing
// one is a node whose next revision or restore has nothing to start from.
func APIInstances(pods []corev1.Pod, controlPlane []string) Result {
	r := Result{ID: "api.instances", Severity: OK}
	byName := map[string]*corev1.Pod{}
	for i := range pods {
		byName[pods[i].Name] = &pods[i]
	}
	nodes := append([]string(nil), controlPlane...)
	sort.Strings(nodes)
	ready := 0
	for _, node := range nodes {
		name := "kube-apiserver-" + node
		p := byName[name]
		switch problem := podProblem(p); {
		case p == nil:
			r.Evidence = append(r.Evidence, fmt.Sprintf("%s: no pod %s", node, name))
		case problem != "":
			r.Evidence = append(r.Evidence, fmt.Sprintf("%s: %s %s", node, name, problem))
		default:
			ready++
		}
	}
	r.Summary = fmt.Sprintf("%d of %d control-plane nodes run a ready kube-apiserver", ready, len(nodes))
	if ready < len(nodes) {
		r.Severity = Fail
		// A node that is down (nodes.ready) takes its pod with it; a node
		// that is up but runs no ready instance is a failed installer or
		// a revision that does not start, which a new revision retries.
		r.Fix = "if the node is down, bring it back first (see nodes.ready); otherwise see `oc get pods -n " + KubeAPIServerNamespace +
			" -o wide` and the staticpods.kubeapiserver check, and roll a new revision to every node with `oc recover redeploy kube-apiserver`"
	}
	return r
}

// podProblem says why p does not count as a ready instance, "" when it
// does: it must be Running with every container ready.
func podProblem(p *corev1.Pod) string {
	if p == nil {
		return "missing"
	}
	if p.Status.Phase != corev1.PodRunning {
		return fmt.Sprintf("is %s", p.Status.Phase)
	}
	if len(p.Status.ContainerStatuses) == 0 {
		return "is Running, but reports no containers"
	}
	var notReady []string
	for _, c := range p.Status.ContainerStatuses {
		if !c.Ready {
			notReady = append(notReady, c.Name)
		}
	}
	if len(notReady) == 0 {
		return ""
	}
	sort.Strings(notReady)
	return "is Running, but not ready: " + strings.Join(notReady, ", ")
}

// APIService is what APIServices judges of one
// apiregistration.k8s.io/v1 APIService: its name (<version>.<group>) and
// its Available condition. It is a local type so that the check needs no
// kube-aggregator module; the caller reads the objects as unstructured.
type APIService struct {
	Name      string
	Available bool
	Reason    string
	Message   string
}

// APIServices judges the aggregated APIs: FAIL when one of OpenShift's own
// (*.openshift.io) or the metrics API is not Available, since controllers,
// namespace deletion and the operators stall on their discovery; WARN for
// any other that is not Available.
func APIServices(list []APIService) Result {
	r := Result{ID: "api.apiservices", Severity: OK}
	down := 0
	for _, s := range list {
		if s.Available {
			continue
		}
		down++
		_, group, _ := strings.Cut(s.Name, ".")
		if strings.HasSuffix(group, ".openshift.io") || group == "metrics.k8s.io" {
			r.Severity = Fail
		} else {
			r.Severity = Worse(r.Severity, Warn)
		}
		var why []string
		for _, part := range []string{s.Reason, oneLine(s.Message)} {
			if part != "" {
				why = append(why, part)
			}
		}
		r.Evidence = append(r.Evidence, strings.Join(append([]string{s.Name + " not Available"}, why...), ": "))
	}
	sort.Strings(r.Evidence)
	r.Summary = fmt.Sprintf("%d of %d API services Available", len(list)-down, len(list))
	if r.Severity != OK {
		r.Fix = "an aggregated API is served by the pods behind its service: `oc get apiservice <name> -o yaml` names the service; OpenShift's own are served from openshift-apiserver and openshift-oauth-apiserver (`oc get pods -n openshift-apiserver`)"
	}
	return r
}
