package health

import (
	"errors"
	"strings"
	"testing"
)

// A Prometheus answer as a 4.14 cluster gives it, trimmed.
const alertsJSON = `{"status":"success","data":{"alerts":[
{"labels":{"alertname":"Watchdog","namespace":"openshift-monitoring","prometheus":"openshift-monitoring/k8s","severity":"none"},
 "annotations":{"summary":"An alert that should always be firing to certify that Alertmanager is working properly."},
 "state":"firing","activeAt":"2024-03-01T10:00:00Z","value":"1e+00"},
{"labels":{"alertname":"AlertmanagerReceiversNotConfigured","namespace":"openshift-monitoring","severity":"warning"},
 "annotations":{"summary":"Receivers (notification integrations) are not configured on Alertmanager"},"state":"firing"},
{"labels":{"alertname":"etcdMembersDown","namespace":"openshift-etcd","severity":"critical","pod":"etcd-master-1"},
 "annotations":{"description":"etcd cluster \"etcd\": members are down (1).","summary":"etcd cluster members are down."},"state":"firing"},
{"labels":{"alertname":"KubePodCrashLooping","namespace":"openshift-ingress","severity":"warning","pod":"router-a"},
 "annotations":{"description":"Pod openshift-ingress/router-a is in waiting state (reason: \"CrashLoopBackOff\")."},"state":"firing"},
{"labels":{"alertname":"KubePodCrashLooping","namespace":"openshift-ingress","severity":"warning","pod":"router-b"},
 "annotations":{"description":"Pod openshift-ingress/router-b is in waiting state."},"state":"firing"},
{"labels":{"alertname":"KubeCPUOvercommit","severity":"warning"},"annotations":{"summary":"Cluster has overcommitted CPU resource requests."},"state":"pending"},
{"labels":{"alertname":"InsightsRecommendationActive","namespace":"openshift-insights","severity":"info"},"annotations":{},"state":"firing"}
]}}`

func TestAlerts(t *testing.T) {
	all, err := ParseAlerts([]byte(alertsJSON))
	if err != nil {
		t.Fatal(err)
	}
	r := Alerts(MonitoringAnswer{Pod: "prometheus-k8s-0", Alerts: all})
	want := []string{
		"critical etcdMembersDown (namespace openshift-etcd): etcd cluster members are down.",
		"warning KubePodCrashLooping (namespace openshift-ingress) ×2: Pod openshift-ingress/router-a is in waiting state (reason: \"CrashLoopBackOff\").",
	}
	if r.Severity != Fail || strings.Join(r.Evidence, "\n") != strings.Join(want, "\n") || r.Fix == "" {
		t.Errorf("critical firing: %+v", r)
	}
	if r.Summary != "1 critical and 2 warning alert(s) firing (prometheus-k8s-0; 1 of other severities not judged)" {
		t.Errorf("summary %q", r.Summary)
	}

	var warnings []Alert
	for _, a := range all {
		if a.Labels["severity"] != "critical" {
			warnings = append(warnings, a)
		}
	}
	if r := Alerts(MonitoringAnswer{Pod: "prometheus-k8s-1", Alerts: warnings}); r.Severity != Warn || len(r.Evidence) != 1 || !strings.Contains(r.Summary, "prometheus-k8s-1") {
		t.Errorf("warnings only: %+v", r)
	}

	// What a healthy cluster fires: Watchdog, no receivers, an info and a
	// pending warning.
	var quiet []Alert
	for _, a := range all {
		switch a.Labels["alertname"] {
		case "Watchdog", "AlertmanagerReceiversNotConfigured", "KubeCPUOvercommit", "InsightsRecommendationActive":
			quiet = append(quiet, a)
		}
	}
	if r := Alerts(MonitoringAnswer{Pod: "prometheus-k8s-0", Alerts: quiet}); r.Severity != OK || len(r.Evidence) != 0 || r.Fix != "" {
		t.Errorf("healthy: %+v", r)
	}
}

func TestAlertsWithoutMonitoring(t *testing.T) {
	r := Alerts(MonitoringAnswer{Err: errors.New("openshift-monitoring/prometheus-k8s-0: not found; openshift-monitoring/prometheus-k8s-1: not found")})
	if r.Severity != Warn || r.Summary != "monitoring does not answer: alerts not checked" || !strings.Contains(r.Evidence[0], "prometheus-k8s-1") || r.Fix == "" {
		t.Errorf("%+v", r)
	}
}

func TestAlertsEvidenceIsBounded(t *testing.T) {
	var many []Alert
	for i := 0; i < alertsShown+5; i++ {
		many = append(many, Alert{State: "firing", Labels: map[string]string{"alertname": "A" + string(rune('a'+i)), "severity": "warning"},
			Annotations: map[string]string{"description": strings.Repeat("x", 500)}})
	}
	r := Alerts(MonitoringAnswer{Pod: "p", Alerts: many})
	if len(r.Evidence) != alertsShown+1 || r.Evidence[alertsShown] != "and 5 more" {
		t.Fatalf("%d lines, last %q", len(r.Evidence), r.Evidence[len(r.Evidence)-1])
	}
	if n := len([]rune(r.Evidence[0])); n > alertTextMax+40 {
		t.Errorf("line of %d runes: %q", n, r.Evidence[0])
	}
}

func TestParseAlertsRefusesWhatIsNotTheAPI(t *testing.T) {
	for _, body := range []string{"", "curl: (7) Failed to connect to localhost port 9090", `{"status":"error","errorType":"unavailable","error":"TSDB not ready"}`} {
		if _, err := ParseAlerts([]byte(body)); err == nil {
			t.Errorf("%q: no error", body)
		}
	}
}
