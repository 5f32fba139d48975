package health

import (
	"fmt"
	"sort"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// webhookResourcesShown is how many resources a finding names before it
// says how many more there are.
const webhookResourcesShown = 4

// Webhooks warns for every admission webhook that fails closed
// (failurePolicy Fail, which an unset policy means in v1) and is served by
// a service with no ready endpoint (ready is ReadyServices' answer): every
// request it matches is refused until the service is back, and during a
// restore that includes the pods that would bring it back. Webhooks called
// by URL are not judged: their endpoint is outside the cluster's view.
func Webhooks(validating []admissionregistrationv1.ValidatingWebhookConfiguration, mutating []admissionregistrationv1.MutatingWebhookConfiguration, ready map[string]bool) Result {
	r := Result{ID: "webhooks", Severity: OK}
	judged := 0
	judge := func(kind, config, hook string, policy *admissionregistrationv1.FailurePolicyType, cc admissionregistrationv1.WebhookClientConfig, rules []admissionregistrationv1.RuleWithOperations) {
		if cc.Service == nil || (policy != nil && *policy != admissionregistrationv1.Fail) {
			return
		}
		judged++
		svc := cc.Service.Namespace + "/" + cc.Service.Name
		if ready[svc] {
			return
		}
		r.Severity = Warn
		r.Evidence = append(r.Evidence, fmt.Sprintf("%s webhook %s/%s → service %s has no ready endpoint: it blocks %s while down", kind, config, hook, svc, webhookResources(rules)))
	}
	for _, c := range validating {
		for _, w := range c.Webhooks {
			judge("validating", c.Name, w.Name, w.FailurePolicy, w.ClientConfig, w.Rules)
		}
	}
	for _, c := range mutating {
		for _, w := range c.Webhooks {
			judge("mutating", c.Name, w.Name, w.FailurePolicy, w.ClientConfig, w.Rules)
		}
	}
	sort.Strings(r.Evidence)
	r.Summary = fmt.Sprintf("%d fail-closed webhooks served in the cluster", judged)
	if len(r.Evidence) > 0 {
		r.Summary += fmt.Sprintf(", %d without a ready endpoint", len(r.Evidence))
		r.Fix = "bring the service's pods back (`oc get pods -n <namespace>`); during a restore, save and delete the webhook configuration or set its failurePolicy to Ignore, and put it back once the cluster is restored (OpenShift 4.12 documentation, Backup and restore, 5.4.2.2 \"Restoring to a previous cluster state\")"
	}
	return r
}

// webhookResources names what a webhook's rules match: "pods,
// deployments.apps", "*" for everything, with "and N more" past a few.
func webhookResources(rules []admissionregistrationv1.RuleWithOperations) string {
	seen := map[string]bool{}
	for _, rule := range rules {
		groups := rule.APIGroups
		if len(groups) == 0 {
			groups = []string{""}
		}
		for _, g := range groups {
			for _, res := range rule.Resources {
				if res == "*/*" {
					res = "*"
				}
				name := res + "." + g
				switch {
				case g == "*" && res == "*":
					name = "*"
				case g == "":
					name = res
				}
				seen[name] = true
			}
		}
	}
	if len(seen) == 0 {
		return "nothing"
	}
	if seen["*"] {
		return "every resource"
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) > webhookResourcesShown {
		return fmt.Sprintf("%s and %d more", strings.Join(names[:webhookResourcesShown], ", "), len(names)-webhookResourcesShown)
	}
	return strings.Join(names, ", ")
}

// ReadyServices is, for every service that EndpointSlices list (by their
// kubernetes.io/service-name label), whether at least one endpoint is
// ready: "namespace/name" → ready. An endpoint whose ready condition is
// unset counts as ready, as the API documents it should be read.
func ReadyServices(slices []discoveryv1.EndpointSlice) map[string]bool {
	ready := map[string]bool{}
	for _, s := range slices {
		name := s.Labels[discoveryv1.LabelServiceName]
		if name == "" {
			continue
		}
		key := s.Namespace + "/" + name
		for _, e := range s.Endpoints {
			if e.Conditions.Ready == nil || *e.Conditions.Ready {
				ready[key] = true
			}
		}
		if !ready[key] {
			ready[key] = false
		}
	}
	return ready
}
