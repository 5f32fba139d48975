package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/oc-recover/oc-recover/pkg/debugnode"
)

// ErrTooLate: the recovery host has begun restoring; the restore cannot
// be called back any more.
var ErrTooLate = errors.New("too late to abort")

// Abort calls back the restore of journal j while its recovery host has
// not begun: the recovery host's abort first (taken under the lock of its
// decision to restore, so it either keeps the restore from ever beginning
// or refuses), then every peer puts back what it moved. The journal is
// ended and the sentinel removed, and the cluster is as it was. Once the
// recovery host has begun, it refuses with ErrTooLate and changes
// nothing.
func Abort(ctx context.Context, c Clients, start debugnode.StartFunc, j *Journal, command string, ev Events) error {
	p := j.Plan
	rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	_, err := c.Kube.CoreV1().ConfigMaps(SentinelNamespace).Get(rctx, p.sentinel(), metav1.GetOptions{})
	cancel()
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Errorf("refusing to abort, nothing was changed: the API answers without the record of restore %s (ConfigMap %s/%s), so it serves the restored data: the restore is done. Run `%s restore %s` to finish it", p.ID, SentinelNamespace, p.sentinel(), command, p.Backup.Dir)
	case err != nil:
		return fmt.Errorf("refusing to abort, nothing was changed: read the record of restore %s: %w", p.ID, err)
	}
	runners := newRunners(start)
	defer runners.close(ctx)
	// The recovery host alone first: until its abort is known to have
	// held, it may be restoring, and no peer may put its data back.
	if !disarm(ctx, c, runners, p, []Host{p.Recovery}, ev) {
		if begun, _ := recoveryBegun(ctx, runners, p); begun {
			return fmt.Errorf("%w: restore %s has begun on the recovery host %s, and nothing was changed: run `%s restore %s` to wait for it and finish it", ErrTooLate, p.ID, p.Recovery.Name, command, p.Backup.Dir)
		}
		return fmt.Errorf("refusing to abort further, nothing else was changed: the recovery host %s could not be disarmed (above), and while it may restore no other host puts its data back. Run this command again, or `bash %s/run.sh abort` on its console first", p.Recovery.Name, p.dir())
	}
	if !disarm(ctx, c, runners, p, p.Peers, ev) {
		return abandon(ctx, c, j, fmt.Errorf("restore %s is called back, but not every host could be disarmed (above): the recovery host will not restore, and a peer still waiting puts its part back by itself after its deadline", p.ID))
	}
	return retire(ctx, c, j, "aborted by "+command+" restore abort")
}

// recoveryBegun: the recovery host has decided to restore.
func recoveryBegun(ctx context.Context, runners *runners, p *Plan) (bool, error) {
	r, err := runners.get(ctx, p.Recovery.Name)
	if err != nil {
		return false, err
	}
	code, err := r.Host(ctx, "test -e "+p.dir()+"/state/peers-stopped", nil, io.Discard, io.Discard)
	return err == nil && code == 0, err
}
