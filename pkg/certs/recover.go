// Package certs recovers a cluster from expired control-plane certificates
// as OpenShift's documentation does (OpenShift 4.5 documentation, Backup
// and restore, 5.4 "Recovering from expired control plane certificates";
// OpenShift 4.12 documentation, Backup and restore, 5.4.3): from 4.4.8 on
// the cluster regenerates its own certificates once the kube-apiserver
// runs, and what is left to the administrator is approving the nodes'
// CSRs. Recover waits for the API, approves the valid node CSRs round
// after round with the post-outage rule (csr.PostOutage), waits for the
// certificate rotations to clear and the cluster operators to settle, and
// reports what is still expired. It never regenerates a certificate or a
// signer itself: that is the cluster's, or the administrator's with
// `oc adm ocp-certificates`. Where only a console helps (the API does not
// come back; OpenShift 4.3) it renders the host procedure.
package certs

import (
	"context"
	"errors"
	"sort"
	"time"

	configclient "github.com/openshift/client-go/config/clientset/versioned"
	operatorclient "github.com/openshift/client-go/operator/clientset/versioned"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/oc-recover/oc-recover/pkg/csr"
	"github.com/oc-recover/oc-recover/pkg/era"
	"github.com/oc-recover/oc-recover/pkg/health"
	"github.com/oc-recover/oc-recover/pkg/openshift"
	"github.com/oc-recover/oc-recover/pkg/power"
)

// Phase is where a recovery stands: the first thing not done yet.
type Phase string

const (
	// WaitAPI: the API never answered a whole round.
	WaitAPI          Phase = "api"
	WaitControlPlane Phase = "control-plane nodes"
	WaitWorkers      Phase = "worker nodes"
	// WaitRotations: a certificate rotation still fails
	// (CertRotation_*_Degraded=True).
	WaitRotations Phase = "certificate rotations"
	WaitOperators Phase = "cluster operators"
	// Recovered: every node Ready, no rotation failing, every cluster
	// operator available and not degraded.
	Recovered Phase = "recovered"
	// Refused: the release's recovery is a host procedure (4.3): nothing
	// was done, the procedure is printed.
	Refused Phase = "refused"
)

// PhaseOf names a restart's phase in a recovery's words.
func PhaseOf(p power.Phase) Phase {
	switch p {
	case power.WaitControlPlane:
		return WaitControlPlane
	case power.WaitWorkers:
		return WaitWorkers
	case power.WaitConditions:
		return WaitRotations
	case power.WaitOperators:
		return WaitOperators
	}
	return Recovered
}

// Report is a recovery's outcome.
type Report struct {
	DryRun bool  `json:"dryRun"`
	Phase  Phase `json:"phase"`
	// State is the nodes, the failing rotations and the cluster operators
	// as the last round found them.
	power.State
	Approved int `json:"approved"`
	// CSRs are the CSRs approved (or, in a dry run, to approve) and those
	// left pending for a reason worth a look.
	CSRs []csr.Decision `json:"csrs"`
	// StillExpired are the certificate checks that fail at the end (the
	// certs area of health: expired, or unreadable); Warnings those that
	// warn (expiring soon, rotation overdue).
	StillExpired []health.Result `json:"stillExpired"`
	Warnings     []health.Result `json:"warnings,omitempty"`
	// Pointers say what to do about what is left.
	Pointers []string `json:"pointers,omitempty"`
	// Procedure is the host procedure, when only a console helps.
	Procedure []string `json:"procedure,omitempty"`
	// APIError is the API's last error, when it never answered.
	APIError string `json:"apiError,omitempty"`
}

// Recover runs a recovery.
type Recover struct {
	// Startup approves and waits; its Approver, Operators, Era, DryRun,
	// Interval, Confirm and callbacks are the caller's. Run sets its
	// PostOutage and Also.
	Startup *power.Startup
	// Operator reads the certificate rotations' conditions.
	Operator operatorclient.Interface
	// Kube and Config read the nodes and the release a procedure is
	// rendered with.
	Kube   kubernetes.Interface
	Config configclient.Interface
	// REST is the kubeconfig's: its server's certificate is read (without
	// trusting it) to tell why the API does not answer.
	REST *rest.Config
	// Certs runs the certificate checks (health's certs area).
	Certs func(ctx context.Context) []health.Result
	// Command is the plugin as the user runs it ("oc recover").
	Command string
	// Waited is how long the run may wait (--timeout), for the messages.
	Waited time.Duration
	// Now reads the clock; nil means time.Now.
	Now func() time.Time
	// OnDiagnosis, if set, is told what the API's certificate says of why
	// the API does not answer, whenever that changes.
	OnDiagnosis func(d string)
}

// diagnoseEvery bounds how often the API's certificate is read while the
// API does not answer.
const diagnoseEvery = 15 * time.Second

func (r *Recover) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// Run recovers, or until ctx ends, and returns the report. It returns an
// error with the report when the release is refused (the report holds the
// 4.3 procedure) and with none when the administrator declined the
// approvals (csr.ErrNotConfirmed).
func (r *Recover) Run(ctx context.Context) (*Report, error) {
	s := r.Startup
	s.PostOutage = &csr.PostOutage{}
	s.Also = func(ctx context.Context) ([]power.Condition, error) { return ReadRotations(ctx, r.Operator) }
	var (
		answered  bool
		lastErr   string
		serving   *health.ServingChain
		diagnosed time.Time
		said      string
	)
	onRetry, onState := s.OnRetry, s.OnState
	s.OnRetry = func(err error) {
		lastErr = err.Error()
		if onRetry != nil {
			onRetry(err)
		}
		if r.REST == nil || (!diagnosed.IsZero() && time.Since(diagnosed) < diagnoseEvery) {
			return
		}
		diagnosed = time.Now()
		chain := health.ReadServingChain(ctx, r.REST)
		serving = &chain
		if d := DiagnoseAPI(chain, r.now()); d != "" && d != said && r.OnDiagnosis != nil {
			said = d
			r.OnDiagnosis(d)
		}
	}
	s.OnState = func(st power.State, approved int) {
		answered = true
		if onState != nil {
			onState(st, approved)
		}
	}
	rep, err := s.Run(ctx)
	var refusal *era.UnsupportedError
	switch {
	case errors.As(err, &refusal):
		return r.refused(ctx, refusal), err
	case err != nil:
		return nil, err
	}
	out := &Report{DryRun: rep.DryRun, Phase: PhaseOf(rep.Phase), State: rep.State, Approved: rep.Approved, CSRs: rep.CSRs, StillExpired: []health.Result{}}
	if !answered {
		out.Phase, out.APIError = WaitAPI, lastErr
		out.Procedure = HostProcedure(Cluster{API: r.host(), Serving: serving, Now: r.now()}, r.Command, r.Waited, lastErr)
		return out, nil
	}
	// The report is read even when the time is up: it is what the
	// administrator needs then (bounded, and not past an interrupt).
	final, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if errors.Is(ctx.Err(), context.Canceled) {
		final = ctx
	}
	for _, res := range r.Certs(final) {
		switch res.Severity {
		case health.Fail:
			out.StillExpired = append(out.StillExpired, res)
		case health.Warn:
			out.Warnings = append(out.Warnings, res)
		}
	}
	out.Pointers = Pointers(out, r.release(final), r.Command)
	return out, nil
}

func (r *Recover) host() string {
	if r.REST == nil {
		return ""
	}
	return r.REST.Host
}

// release reads the cluster's release, nil when it cannot.
func (r *Recover) release(ctx context.Context) *era.Release {
	if r.Config == nil {
		return nil
	}
	cv, err := r.Config.ConfigV1().ClusterVersions().Get(ctx, "version", metav1.GetOptions{})
	if err != nil {
		return nil
	}
	v, err := era.Version(cv)
	if err != nil {
		return nil
	}
	rel, _ := era.Parse(v)
	return rel
}

// refused is the report of a release refused: for OpenShift 4.3 and
// earlier 4.x releases, the recovery API server procedure rendered with
// the release image and the nodes (read only).
func (r *Recover) refused(ctx context.Context, refusal *era.UnsupportedError) *Report {
	out := &Report{DryRun: r.Startup.DryRun, Phase: Refused, CSRs: []csr.Decision{}, StillExpired: []health.Result{}}
	rel := refusal.Release
	if rel == nil || rel.Major != 4 || rel.Minor >= era.OldestMinor {
		return out
	}
	c := Cluster{API: r.host(), Release: rel.Version, Now: r.now()}
	if r.Config != nil {
		if cv, err := r.Config.ConfigV1().ClusterVersions().Get(ctx, "version", metav1.GetOptions{}); err == nil {
			c.ReleaseImage = cv.Status.Desired.Image
		}
	}
	if r.Kube != nil {
		if nodes, err := r.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); err == nil {
			for i := range nodes.Items {
				if openshift.IsControlPlane(&nodes.Items[i]) {
					c.ControlPlane = append(c.ControlPlane, nodes.Items[i].Name)
				} else {
					c.Workers = append(c.Workers, nodes.Items[i].Name)
				}
			}
			sort.Strings(c.ControlPlane)
			sort.Strings(c.Workers)
		}
	}
	out.Procedure = Procedure43(c, r.Command)
	return out
}
