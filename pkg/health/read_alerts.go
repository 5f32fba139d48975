package health

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/oc-recover/oc-recover/pkg/debugnode"
)

// alertsTimeout bounds asking one Prometheus pod: it answers at once
// when it runs.
const alertsTimeout = 20 * time.Second

// alertChecks asks the platform Prometheus for its alerts, through an exec
// into its prometheus container (nothing is created), one replica after
// the other.
func alertChecks(ctx context.Context, c *cluster) []Result {
	return []Result{Alerts(c.readAlerts(ctx))}
}

func (c *cluster) readAlerts(ctx context.Context) MonitoringAnswer {
	var why []string
	for _, name := range PrometheusPods {
		alerts, err := c.alertsFrom(ctx, name)
		if err == nil {
			return MonitoringAnswer{Pod: name, Alerts: alerts}
		}
		why = append(why, fmt.Sprintf("%s/%s: %v", MonitoringNamespace, name, err))
	}
	return MonitoringAnswer{Err: fmt.Errorf("%s", strings.Join(why, "; "))}
}

// alertsFrom asks one Prometheus pod. The exec is the only request: the
// apiserver refuses it, saying why, for a pod that is missing or not
// running (a request fewer than reading the pod first, at any scale).
func (c *cluster) alertsFrom(ctx context.Context, name string) ([]Alert, error) {
	if c.REST == nil {
		return nil, fmt.Errorf("no REST config to exec with")
	}
	ctx, cancel := context.WithTimeout(ctx, alertsTimeout)
	defer cancel()
	var out, errOut bytes.Buffer
	code, err := debugnode.ExecInPod(ctx, c.Kube, c.REST, MonitoringNamespace, name, PrometheusContainer, AlertsCommand, nil, &out, &errOut)
	if err != nil {
		return nil, fmt.Errorf("exec %s: %w", strings.Join(AlertsCommand, " "), err)
	}
	if code != 0 {
		// curl's exit 7: nothing listens on localhost:9090 (Prometheus
		// starting, or replaying its write-ahead log).
		return nil, fmt.Errorf("`%s` exited %d: %s", strings.Join(AlertsCommand, " "), code, abbreviate(strings.TrimSpace(errOut.String()+" "+out.String()), 200))
	}
	return ParseAlerts(out.Bytes())
}
