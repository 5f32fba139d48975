package health

import (
	"context"
	"fmt"
	"time"
)

// apiProbeTimeout bounds the first request: an API that does not answer
// in this time gets no other request, so that health reports a dead
// control plane at once instead of waiting on every area.
const apiProbeTimeout = 15 * time.Second

// readyzAnswer is the API's answer to /readyz?verbose.
type readyzAnswer struct {
	code int
	body string
	err  error
}

// probeReadyz asks /readyz?verbose once, bounded by apiProbeTimeout; its
// answer serves api.readyz too. err is set only when no answer came at
// all (an answer other than 200 is judged by api.readyz).
func probeReadyz(ctx context.Context, c Clients) readyzAnswer {
	pctx, cancel := context.WithTimeout(ctx, apiProbeTimeout)
	defer cancel()
	var a readyzAnswer
	body, err := c.Kube.Discovery().RESTClient().Get().AbsPath("/readyz").Param("verbose", "").Do(pctx).StatusCode(&a.code).Raw()
	a.body = string(body)
	if a.code == 0 {
		a.err = err
		if a.err == nil {
			a.err = fmt.Errorf("no answer")
		}
	}
	return a
}

// apiDownResults are the results when the API does not answer: api.readyz
// fails with why, the API server's certificate is still read (it needs no
// API, and an expired one is a common reason), and every other selected
// check says it did not run.
func apiDownResults(ctx context.Context, c Clients, o Options, err error) []Result {
	var out []Result
	for _, a := range areas {
		for _, id := range a.ids {
			if !o.selected(a.name, id) {
				continue
			}
			switch id {
			case "api.readyz":
				r := CouldNotRun(id, fmt.Errorf("the API at %s does not answer: %w", c.REST.Host, err))
				r.Fix = "if certs.apiserver says its certificate expired, `oc recover certs recover`; if etcd lost quorum, restore from a backup; " +
					"otherwise look at the control-plane hosts from the console (`crictl ps`, `crictl logs` of kube-apiserver and etcd). " +
					"A client or host with a wrong clock gives the same certificate errors"
				out = append(out, r)
			case "certs.apiserver":
				out = append(out, ServingCertificate(ReadServingChain(ctx, c.REST), o.Now))
			default:
				out = append(out, Result{ID: id, Severity: Fail, Summary: "not run: the API does not answer (see api.readyz)"})
			}
		}
	}
	for i := range out {
		out[i].Fix = renameCommand(out[i].Fix, o.Command)
	}
	return out
}
