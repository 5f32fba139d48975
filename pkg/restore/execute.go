package restore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/oc-recover/oc-recover/pkg/debugnode"
)

// SentinelNamespace holds the record of phase A: a ConfigMap the live API
// holds and the restored data does not.
const SentinelNamespace = "openshift-etcd"

// SentinelPrefix starts the sentinel ConfigMap's name; the restore's ID
// ends it.
const SentinelPrefix = "oc-recover-restore-"

// Events tell the command what a restore does as it does it.
type Events struct {
	// Say is a line of progress.
	Say func(format string, args ...any)
	// Upload is the progress of a file going to a host.
	Upload func(name string, done, total int64)
}

func (e Events) say(format string, args ...any) {
	if e.Say != nil {
		e.Say(format, args...)
	}
}

// ErrNotRestored: the hosts' units ended without a restore; the cluster
// is as it was.
var ErrNotRestored = errors.New("not restored")

// Fire carries out phases A and B of a plan that Preflight returned: it
// stages the runner on every host (and the backup on the recovery host),
// records the restore in the live API, arms the hosts' units (the recovery
// host first, so that it is waiting when the peers stop their etcd), and
// waits until the API serves the restored data. Should any host not arm,
// the hosts armed so far are disarmed and left as they were. apiTimeout
// bounds the wait for the restored API.
func Fire(ctx context.Context, c Clients, o Options, p *Plan, apiTimeout time.Duration, ev Events) (*Journal, error) {
	all := append([]Host{p.Recovery}, p.Peers...)
	runners := newRunners(o.StartRunner)
	defer runners.close(ctx)
	for _, h := range all {
		if _, err := runners.get(ctx, h.Name); err != nil {
			return nil, fmt.Errorf("nothing was changed on the hosts: %w", err)
		}
	}
	for _, h := range all {
		ev.say("%s: staging %s", h.Name, p.dir())
		fresh := p.dir() + ".new"
		if err := stage(ctx, runners.m[h.Name], p, h, all, p.ID, fresh, h.Name == p.Recovery.Name, ev.Upload); err != nil {
			unstage(ctx, runners, p)
			return nil, fmt.Errorf("stage %s: %w (nothing was changed: what was staged is removed)", h.Name, err)
		}
		var stderr bytes.Buffer
		if code, err := runners.m[h.Name].Host(ctx, "mv "+fresh+" "+p.dir()+" && sync", nil, io.Discard, &stderr); err != nil || code != 0 {
			unstage(ctx, runners, p)
			return nil, fmt.Errorf("stage %s: %w", h.Name, hostErr("put "+p.dir()+" in place", code, err, &stderr))
		}
	}
	if err := writeSentinel(ctx, c, p, o.Now); err != nil {
		unstage(ctx, runners, p)
		return nil, err
	}
	j := &Journal{Plan: p, FiredAt: o.Now.UTC()}
	if err := WriteJournal(j); err != nil {
		_ = c.Kube.CoreV1().ConfigMaps(SentinelNamespace).Delete(context.WithoutCancel(ctx), p.sentinel(), metav1.DeleteOptions{})
		unstage(ctx, runners, p)
		return nil, fmt.Errorf("%w (nothing was changed: a re-run needs it to tell a restore under way from a lost quorum)", err)
	}
	var armed []Host
	for _, h := range all {
		if err := arm(ctx, runners.m[h.Name], p, h); err != nil {
			disarm(ctx, c, runners, p, armed, ev)
			return j, abandon(ctx, c, j, fmt.Errorf("arm %s: %w; the hosts armed before it were disarmed and are as they were: nothing was restored", h.Name, err))
		}
		armed = append(armed, h)
		ev.say("%s: armed %s (%s)", h.Name, p.unit(), role(p, h))
	}
	return j, awaitRestored(ctx, c, runners, j, apiTimeout, ev)
}

// Await waits for a restore that an earlier run fired (its journal j)
// until the API serves the restored data, as Fire does.
func Await(ctx context.Context, c Clients, start debugnode.StartFunc, j *Journal, apiTimeout time.Duration, ev Events) error {
	runners := newRunners(start)
	defer runners.close(ctx)
	return awaitRestored(ctx, c, runners, j, apiTimeout, ev)
}

// runners are debug pods started on demand, one per host, and closed
// together.
type runners struct {
	start debugnode.StartFunc
	m     map[string]debugnode.Runner
}

func newRunners(start debugnode.StartFunc) *runners {
	return &runners{start: start, m: map[string]debugnode.Runner{}}
}

func (rs *runners) get(ctx context.Context, node string) (debugnode.Runner, error) {
	if r, ok := rs.m[node]; ok {
		return r, nil
	}
	r, err := rs.start(ctx, node)
	if err != nil {
		return nil, err
	}
	rs.m[node] = r
	return r, nil
}

// close removes the debug pods. After a restore they are not in the API
// any more (the kubelets stop them), and this fails quietly.
func (rs *runners) close(ctx context.Context) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Second)
	defer cancel()
	for _, r := range rs.m {
		_ = r.Close(cctx)
	}
}

func role(p *Plan, h Host) string {
	if h.Name == p.Recovery.Name {
		return "recovery"
	}
	return "peer " + p.Recovery.Name
}

// arm starts the host's unit: a transient service of PID 1's manager,
// not a child of the debug pod, so it outlives the pod and the API.
func arm(ctx context.Context, r debugnode.Runner, p *Plan, h Host) error {
	script := fmt.Sprintf(`set -e
systemd-run --unit=%[1]s --description=%[2]s --remain-after-exit --property=TimeoutStopSec=30 /bin/bash %[3]s/run.sh %[4]s
for i in 1 2 3 4 5; do
  state=$(systemctl is-active %[1]s || true)
  case "$state" in active|activating) echo "$state"; exit 0 ;; esac
  sleep 1
done
echo "unit %[1]s is $state" >&2
tail -n 20 %[3]s/run.log >&2 2>/dev/null || true
exit 1`, p.unit(), debugnode.ShellQuote("oc-recover restore "+p.ID+" ("+role(p, h)+")"), p.dir(), role(p, h))
	var stderr bytes.Buffer
	code, err := r.Host(ctx, script, nil, io.Discard, &stderr)
	if err != nil || code != 0 {
		return hostErr("systemd-run", code, err, &stderr)
	}
	return nil
}

// disarm undoes the armed hosts' parts with `run.sh abort`, the recovery
// host's first, and stops their units. On the recovery host the abort
// comes first: it is taken under the lock of the decision to restore, so
// it either keeps the restore from beginning or refuses (exit 3, "too
// late"), and a unit that may be restoring is never stopped. A peer's unit
// is stopped first, so that it moves nothing more while its part is put
// back. disarm reports whether every host was disarmed; a host that could
// not be is named with what to do on its console.
func disarm(ctx context.Context, c Clients, runners *runners, p *Plan, armed []Host, ev Events) bool {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	all := true
	for _, h := range armed {
		script := "systemctl stop " + p.unit() + " || true; bash " + p.dir() + "/run.sh abort"
		if h.Name == p.Recovery.Name {
			script = "bash " + p.dir() + "/run.sh abort && { systemctl stop " + p.unit() + " || true; }"
		}
		var out bytes.Buffer
		r, err := runners.get(dctx, h.Name)
		code := 0
		if err == nil {
			code, err = r.Host(dctx, script, nil, &out, &out)
		}
		if err != nil || code != 0 {
			all = false
			ev.say("%s: disarming failed (%s): check it with `bash %s/run.sh abort` on its console", h.Name, strings.TrimSpace(hostErr("run.sh abort", code, err, &out).Error()), p.dir())
			if h.Name == p.Recovery.Name && code == 3 {
				return false // begun: the peers must not put their data back
			}
			continue
		}
		ev.say("%s: disarmed", h.Name)
	}
	return all
}

// abandon ends the journal of a restore that did not happen, then removes
// its sentinel: in that order, so that a journal never outlives its
// sentinel unended, which a re-run would take for a restore done.
func abandon(ctx context.Context, c Clients, j *Journal, err error) error {
	if rerr := retire(ctx, c, j, err.Error()); rerr != nil {
		return fmt.Errorf("%w; and %v", err, rerr)
	}
	return err
}

// retire ends the journal with outcome, then removes the sentinel.
func retire(ctx context.Context, c Clients, j *Journal, outcome string) error {
	if err := EndJournal(j, outcome); err != nil {
		return err
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	err := c.Kube.CoreV1().ConfigMaps(SentinelNamespace).Delete(dctx, j.Plan.sentinel(), metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("remove ConfigMap %s/%s: %w (delete it by hand: the restore was called back)", SentinelNamespace, j.Plan.sentinel(), err)
	}
	return nil
}

// unstage removes the restore's directory from every host, before any
// unit was armed.
func unstage(ctx context.Context, runners *runners, p *Plan) {
	for _, r := range runners.m {
		removeFresh(ctx, r, p.dir()+" "+p.dir()+".new")
	}
}

func writeSentinel(ctx context.Context, c Clients, p *Plan, now time.Time) error {
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: p.sentinel(), Namespace: SentinelNamespace,
			Labels: map[string]string{debugnode.ManagedByLabel: debugnode.ManagedByValue}},
		Data: map[string]string{"id": p.ID, "recoveryNode": p.Recovery.Name, "firedAt": now.UTC().Format(time.RFC3339), "backup": p.Backup.Dir},
	}
	if _, err := c.Kube.CoreV1().ConfigMaps(SentinelNamespace).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("record the restore in ConfigMap %s/%s: %w (nothing was changed on the hosts but the staged %s, removed again)", SentinelNamespace, cm.Name, err, p.dir())
	}
	return nil
}

// awaitRestored waits until the API serves the restored data: it answers
// and the sentinel of phase A is gone. While the old cluster still
// answers, the recovery host's unit is watched: should it end without
// restoring (a peer's etcd did not stop), the peers are disarmed at once
// rather than at their deadline.
func awaitRestored(ctx context.Context, c Clients, runners *runners, j *Journal, apiTimeout time.Duration, ev Events) error {
	p := j.Plan
	start := time.Now()
	deadline := start.Add(apiTimeout)
	lastSay, wasDown := time.Time{}, false
	cms := c.Kube.CoreV1().ConfigMaps(SentinelNamespace)
	for {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := cms.Get(rctx, p.sentinel(), metav1.GetOptions{})
		cancel()
		switch {
		case apierrors.IsNotFound(err):
			ev.say("the API serves the restored data (after %s)", time.Since(start).Round(time.Second))
			return nil
		case err == nil:
			if wasDown {
				ev.say("the API answers with the data of before the restore")
				wasDown = false
			}
			if ended, log := unitEnded(ctx, runners, p); ended {
				disarm(ctx, c, runners, p, p.Peers, ev)
				return abandon(ctx, c, j, fmt.Errorf("%w: the recovery host %s ended its part without restoring; the cluster is as it was. Its log:\n%s", ErrNotRestored, p.Recovery.Name, log))
			}
		default:
			if ctx.Err() != nil {
				return interrupted(p, ctx.Err())
			}
			wasDown = true
		}
		if time.Since(lastSay) >= 15*time.Second {
			lastSay = time.Now()
			if err != nil && !apierrors.IsNotFound(err) {
				ev.say("the API does not answer (%s): the hosts restore", time.Since(start).Round(time.Second))
			} else {
				ev.say("waiting for the hosts to stop etcd (%s)", time.Since(start).Round(time.Second))
			}
		}
		if time.Now().After(deadline) {
			return interrupted(p, fmt.Errorf("the restored API did not answer within %s (--api-timeout)", apiTimeout))
		}
		select {
		case <-ctx.Done():
			return interrupted(p, ctx.Err())
		case <-time.After(2 * time.Second):
		}
	}
}

// unitEnded reports whether the recovery host's unit has ended without
// beginning a restore, with the tail of its log.
func unitEnded(ctx context.Context, runners *runners, p *Plan) (bool, string) {
	hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	r, err := runners.get(hctx, p.Recovery.Name)
	if err != nil {
		return false, ""
	}
	var out bytes.Buffer
	script := fmt.Sprintf(`state=$(systemctl is-active %s || true)
case "$state" in active|activating) exit 1 ;; esac
[ ! -e %[2]s/state/restore-started ] || exit 1
tail -n 20 %[2]s/run.log`, p.unit(), p.dir())
	code, err := r.Host(hctx, script, nil, &out, io.Discard)
	if err != nil {
		// A debug pod whose stream broke (the API went down) is started
		// afresh next time.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_ = r.Close(cctx)
		cancel()
		delete(runners.m, p.Recovery.Name)
	}
	return err == nil && code == 0, strings.TrimSpace(out.String())
}

// interrupted is the error once the hosts' units run: they go on without
// the command, a re-run resumes, and `restore abort` calls them back until
// the recovery host begins.
func interrupted(p *Plan, cause error) error {
	return fmt.Errorf("%v. The restore %s runs on the hosts without the API and goes on without this command: run the same command again to wait for it and finish it, or, while the recovery host %s has not begun, call it back with `restore abort %s`. `restore status %s` shows where it stands (%s/run.log and `journalctl -u %s` on the hosts' consoles)", cause, p.ID, p.Recovery.Name, p.Backup.Dir, p.Backup.Dir, p.dir(), p.unit())
}
