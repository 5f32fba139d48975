package health

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// The platform Prometheus: a StatefulSet of two replicas in
// openshift-monitoring. It listens on 127.0.0.1:9090 in its pod
// (the cluster monitoring operator sets listenLocal), behind proxies that
// want a bearer token; an exec into its prometheus container reaches it
// with the caller's own authorisation (pods/exec), and the container's
// image, built on OpenShift's RHEL base image, ships curl.
const (
	MonitoringNamespace = "openshift-monitoring"
	PrometheusContainer = "prometheus"
)

// PrometheusPods are tried in order: either replica knows every alert.
var PrometheusPods = []string{"prometheus-k8s-0", "prometheus-k8s-1"}

// AlertsCommand is what runs in the prometheus container.
var AlertsCommand = []string{"curl", "-s", "http://localhost:9090/api/v1/alerts"}

// ignoredAlerts fire on a healthy cluster: Watchdog always (it proves the
// alerting pipeline works), AlertmanagerReceiversNotConfigured until an
// administrator configures where notifications go.
var ignoredAlerts = map[string]bool{"Watchdog": true, "AlertmanagerReceiversNotConfigured": true}

// alertsShown is how many distinct alerts the evidence names before it
// says how many more fire.
const alertsShown = 20

// alertTextMax bounds the summary or description an alert's evidence
// quotes.
const alertTextMax = 120

// Alert is one alert of Prometheus's /api/v1/alerts.
type Alert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	State       string            `json:"state"`
	ActiveAt    string            `json:"activeAt,omitempty"`
}

// alertsResponse is the body of /api/v1/alerts.
type alertsResponse struct {
	Status    string `json:"status"`
	ErrorType string `json:"errorType,omitempty"`
	Error     string `json:"error,omitempty"`
	Data      struct {
		Alerts []Alert `json:"alerts"`
	} `json:"data"`
}

// ParseAlerts reads Prometheus's answer to /api/v1/alerts.
func ParseAlerts(body []byte) ([]Alert, error) {
	var r alertsResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("not the Prometheus API's JSON: %w (%q)", err, abbreviate(strings.TrimSpace(string(body)), 80))
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("Prometheus answered %s: %s %s", r.Status, r.ErrorType, r.Error)
	}
	return r.Data.Alerts, nil
}

// MonitoringAnswer is what reading the alerts found: the alerts and the
// pod that gave them, or why no pod answered (Err).
type MonitoringAnswer struct {
	Pod    string
	Alerts []Alert
	Err    error
}

// Alerts judges the firing alerts: a critical one fails, a warning warns;
// Watchdog, AlertmanagerReceiversNotConfigured and alerts of any other
// severity (info, none) are not judged. When the monitoring stack does
// not answer, the alerts are unknown: that warns, since a cluster runs
// (and recovers) without it, but its signals are then missing.
func Alerts(a MonitoringAnswer) Result {
	r := Result{ID: "alerts", Severity: OK}
	if a.Err != nil {
		r.Severity = Warn
		r.Summary = "monitoring does not answer: alerts not checked"
		r.Evidence = []string{a.Err.Error()}
		r.Fix = "`oc -n openshift-monitoring get pods` and `oc get clusteroperator monitoring` show why Prometheus does not run"
		return r
	}
	type group struct {
		severity, name, namespace, text string
		count                           int
	}
	groups := map[string]*group{}
	critical, warning, other := 0, 0, 0
	for _, al := range a.Alerts {
		name := al.Labels["alertname"]
		if al.State != "firing" || ignoredAlerts[name] {
			continue
		}
		sev := al.Labels["severity"]
		switch sev {
		case "critical":
			critical++
		case "warning":
			warning++
		default:
			other++
			continue
		}
		ns := al.Labels["namespace"]
		key := sev + "\x00" + name + "\x00" + ns
		g := groups[key]
		if g == nil {
			g = &group{severity: sev, name: name, namespace: ns, text: alertText(al)}
			groups[key] = g
		}
		g.count++
	}
	list := make([]*group, 0, len(groups))
	for _, g := range groups {
		list = append(list, g)
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].severity != list[j].severity {
			return list[i].severity == "critical"
		}
		if list[i].name != list[j].name {
			return list[i].name < list[j].name
		}
		return list[i].namespace < list[j].namespace
	})
	for i, g := range list {
		if i == alertsShown {
			r.Evidence = append(r.Evidence, fmt.Sprintf("and %d more", len(list)-alertsShown))
			break
		}
		line := g.severity + " " + g.name
		if g.namespace != "" {
			line += " (namespace " + g.namespace + ")"
		}
		if g.count > 1 {
			line += fmt.Sprintf(" ×%d", g.count)
		}
		if g.text != "" {
			line += ": " + g.text
		}
		r.Evidence = append(r.Evidence, line)
	}
	switch {
	case critical > 0:
		r.Severity = Fail
		r.Summary = fmt.Sprintf("%d critical and %d warning alert(s) firing", critical, warning)
	case warning > 0:
		r.Severity = Warn
		r.Summary = fmt.Sprintf("%d warning alert(s) firing", warning)
	default:
		r.Summary = "no critical or warning alert firing"
	}
	r.Summary += " (" + a.Pod
	if other > 0 {
		r.Summary += fmt.Sprintf("; %d of other severities not judged", other)
	}
	r.Summary += ")"
	if r.Severity != OK {
		r.Fix = "each alert's runbook_url annotation, and the console's Alerting page, say what it means and what to do; resolve critical alerts before a backup or a recovery (OpenShift Container Platform 4.6 documentation, Installing, 15.8 \"Listing alerts that are firing\")"
	}
	return r
}

// alertText is the alert's summary, else its description (or message, as
// some older rules call it), shortened to one line.
func alertText(a Alert) string {
	for _, k := range []string{"summary", "description", "message"} {
		if t := strings.Join(strings.Fields(a.Annotations[k]), " "); t != "" {
			return abbreviate(t, alertTextMax)
		}
	}
	return ""
}

// abbreviate cuts s to at most n runes, marking the cut.
func abbreviate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
