package csr

import (
	"context"
	"errors"
	"time"

	"k8s.io/apimachinery/pkg/util/sets"
)

// ErrNotConfirmed: the administrator declined the approvals at the prompt.
var ErrNotConfirmed = errors.New("not confirmed; nothing approved")

// Rounds is the loop of "approve each valid CSR" as the restart and
// certificate-recovery procedures run it: read the cluster, decide, ask what
// must be asked, approve, and again after a while, because a restarted
// kubelet asks a serving certificate only once its client certificate is
// issued. `csr approve` and `startup` both run it. What a run has been told
// at the prompt (the approvals confirmed, the new nodes confirmed or
// declined) is remembered from one round to the next, so nothing is asked
// twice.
type Rounds struct {
	Approver *Approver
	// NewNodes are the new nodes, unknown to the cluster, whose bootstrapper
	// CSRs may be approved: those the administrator named, and those
	// confirmed through ConfirmNewNode. Nil means none.
	NewNodes sets.Set[string]
	// DryRun decides and approves nothing: every decision's Outcome is
	// WouldApprove or Pending, and nothing is asked.
	DryRun bool
	// ConfirmNewNode asks whether d's node, which is no node yet and which
	// no Machine announces, is a new host of the administrator's; each node
	// is asked about once. Nil never asks, and such CSRs stay pending.
	ConfirmNewNode func(d Decision) (bool, error)
	// Confirm asks, before the first round that approves anything, whether
	// to approve the decisions marked Approve (and, in the rounds that
	// follow, the valid CSRs that arrive). Nil approves without asking
	// (--yes, or no terminal to ask on).
	Confirm func(ds []Decision) (bool, error)

	// Before, if set, runs at the start of each round of Until, before the
	// cluster is read (startup tells the release there once the API
	// answers). Its error ends the round as a failed read does.
	Before func(ctx context.Context) error
	// Interval is how long Until waits between rounds.
	Interval time.Duration
	// Retry, if set, is told of each round of Until that failed and is
	// tried again after Interval (the API does not answer yet, say).
	Retry func(err error)
	// Final reports which round errors end Until instead of being tried
	// again; ErrNotConfirmed always does.
	Final func(err error) bool
	// PostOutage, if set, applies the post-outage rule to the nodes each
	// round reads, before anything is decided: a node whose kubelet this
	// run has watched stay silent counts as not Ready (see PostOutage).
	// Rounds that cannot read the kubelets' leases apply no rule.
	PostOutage *PostOutage

	confirmed bool
	declined  sets.Set[string] // new nodes not confirmed at the prompt
}

// Once runs one round: it reads the CSRs, nodes and machines, decides,
// asks, and approves. It returns what it read and every pending CSR's
// decision with its outcome; a failed approval is an Outcome (Failed, with
// Error), not an error of the round. It returns ErrNotConfirmed when the
// administrator declines the approvals, with nothing approved.
func (r *Rounds) Once(ctx context.Context) (*Snapshot, []Decision, error) {
	snap, err := r.Approver.Read(ctx)
	if err != nil {
		return nil, nil, err
	}
	if r.PostOutage != nil {
		leases, err := ReadNodeLeases(ctx, r.Approver.Kube)
		if err != nil {
			snap.StaleErr = err
		} else {
			snap.Nodes, snap.Stale = r.PostOutage.Apply(snap.Nodes, leases)
		}
	}
	ds := Decide(snap.CSRs, snap.Nodes, snap.Machines, r.NewNodes)
	if r.DryRun {
		DryRun(ds)
		return snap, ds, nil
	}
	if r.declined == nil {
		r.declined = sets.New[string]()
	}
	if r.ConfirmNewNode != nil {
		asked := false
		for _, d := range ds {
			if d.Category != NewNodeUnconfirmed || r.declined.Has(d.Node) || r.NewNodes.Has(d.Node) {
				continue
			}
			ok, err := r.ConfirmNewNode(d)
			if err != nil {
				return nil, nil, err
			}
			asked = true
			if ok {
				if r.NewNodes == nil {
					r.NewNodes = sets.New[string]()
				}
				r.NewNodes.Insert(d.Node)
			} else {
				r.declined.Insert(d.Node)
			}
		}
		if asked {
			ds = Decide(snap.CSRs, snap.Nodes, snap.Machines, r.NewNodes)
		}
	}
	if r.Confirm != nil && !r.confirmed && CountApprove(ds) > 0 {
		ok, err := r.Confirm(ds)
		if err != nil {
			return nil, nil, err
		}
		if !ok {
			return nil, nil, ErrNotConfirmed
		}
		r.confirmed = true
	}
	for i := range ds {
		if ds[i].Category == NewNodeUnconfirmed && r.declined.Has(ds[i].Node) {
			ds[i].Reason += " (not confirmed at the prompt)"
		}
	}
	ds, _ = r.Approver.Approve(ctx, snap.CSRs, ds)
	return snap, ds, nil
}

// Until runs rounds (Before, then Once, then done) every Interval until
// done reports true, and then returns nil. A round that fails is passed to
// Retry and tried again, except that ErrNotConfirmed, an error Final names,
// and any error once ctx has ended are returned as they are. When ctx ends
// between rounds, Until returns ctx.Err(): the caller tells a timeout from
// a refusal by ctx.Err().
func (r *Rounds) Until(ctx context.Context, done func(ctx context.Context, snap *Snapshot, ds []Decision) (bool, error)) error {
	for {
		ok, err := r.round(ctx, done)
		switch {
		case err == nil && ok:
			return nil
		case err != nil && (ctx.Err() != nil || errors.Is(err, ErrNotConfirmed) || (r.Final != nil && r.Final(err))):
			return err
		case err != nil && r.Retry != nil:
			r.Retry(err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(r.Interval):
		}
	}
}

func (r *Rounds) round(ctx context.Context, done func(ctx context.Context, snap *Snapshot, ds []Decision) (bool, error)) (bool, error) {
	if r.Before != nil {
		if err := r.Before(ctx); err != nil {
			return false, err
		}
	}
	snap, ds, err := r.Once(ctx)
	if err != nil {
		return false, err
	}
	return done(ctx, snap, ds)
}

// CountApprove counts the decisions marked Approve.
func CountApprove(ds []Decision) int {
	n := 0
	for _, d := range ds {
		if d.Approve {
			n++
		}
	}
	return n
}
