package box

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Filling etcd up to its quota, and the way back an administrator takes:
// delete what filled it, compact, defragment every member, disarm the
// alarm. Everything here talks to the members directly, under a key prefix
// the kube-apiserver does not own, so the API never decodes the filler.

// DefaultFillPrefix is where FillEtcd writes when given no prefix.
const DefaultFillPrefix = "/box-fill/"

// ErrEtcdNoSpace is how FillEtcd reports that etcd refused a write for
// lack of space: the member's backend would pass its quota and the
// cluster raised the NOSPACE alarm. The error wraps etcd's own too
// (rpctypes.ErrNoSpace).
var ErrEtcdNoSpace = errors.New("etcd refused a write: database space exceeded")

// fillValueSize is the size of one filler value: about 1 MiB, under etcd's
// default 1.5 MiB request limit (OpenShift keeps the default).
const fillValueSize = 1 << 20

// fillWriters write concurrently: raft batches their proposals, so a few
// writers fill etcd several times faster than one.
const fillWriters = 4

// apiServerPrefix is the kube-apiserver's storage prefix in the box.
const apiServerPrefix = "/kubernetes.io"

// checkFillPrefix refuses a prefix that would reach the apiserver's keys
// (or every key).
func checkFillPrefix(prefix string) error {
	if !strings.HasPrefix(prefix, "/") || len(prefix) < 2 {
		return fmt.Errorf("etcd key prefix %q: must start with / and name something", prefix)
	}
	if strings.HasPrefix(prefix, apiServerPrefix) || strings.HasPrefix(apiServerPrefix, prefix) {
		return fmt.Errorf("etcd key prefix %q overlaps the kube-apiserver's %s", prefix, apiServerPrefix)
	}
	return nil
}

// FillEtcd writes about bytes of incompressible ~1 MiB values under prefix
// (DefaultFillPrefix if empty), keys prefix + a 10-digit index, with a few
// concurrent writers. It returns how many value bytes etcd accepted. When
// etcd runs out of space first it stops there and returns what was written
// with an error matching ErrEtcdNoSpace (and rpctypes.ErrNoSpace): the
// NOSPACE alarm is then raised and every write through the API fails too,
// as on a full cluster, until DeleteEtcdPrefix, CompactAndDefragEtcd and
// DisarmEtcdAlarms undo it.
func (b *Box) FillEtcd(ctx context.Context, prefix string, bytes int64) (written int64, err error) {
	if prefix == "" {
		prefix = DefaultFillPrefix
	}
	if err := checkFillPrefix(prefix); err != nil {
		return 0, err
	}
	cli, err := b.EtcdClient()
	if err != nil {
		return 0, err
	}
	defer cli.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		claimed, accepted atomic.Int64
		errOnce           sync.Once
		firstErr          error
		wg                sync.WaitGroup
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err; cancel() })
	}
	for w := 0; w < fillWriters; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Random bytes: a snapshot of the filled etcd neither
			// compresses nor deduplicates them away.
			var seed [32]byte
			for i := range seed {
				seed[i] = byte(rand.Uint32())
			}
			rng := rand.NewChaCha8(seed)
			buf := make([]byte, fillValueSize)
			for ctx.Err() == nil {
				start := claimed.Add(fillValueSize) - fillValueSize
				if start >= bytes {
					return
				}
				value := buf[:min(fillValueSize, bytes-start)]
				_, _ = rng.Read(value)
				key := fmt.Sprintf("%s%010d", prefix, start/fillValueSize)
				if _, err := cli.Put(ctx, key, string(value)); err != nil {
					if ctx.Err() == nil {
						fail(err)
					}
					return
				}
				accepted.Add(int64(len(value)))
			}
		}()
	}
	wg.Wait()
	written = accepted.Load()
	switch {
	case firstErr != nil && errors.Is(firstErr, rpctypes.ErrNoSpace):
		return written, fmt.Errorf("%w after %d bytes under %s: %w", ErrEtcdNoSpace, written, prefix, firstErr)
	case firstErr != nil:
		return written, fmt.Errorf("fill etcd under %s: %w", prefix, firstErr)
	}
	return written, ctx.Err()
}

// DeleteEtcdPrefix deletes every key under prefix (etcd allows deletes
// while the NOSPACE alarm is raised). The space stays in the members'
// databases until a compaction frees it and a defragmentation returns it.
func (b *Box) DeleteEtcdPrefix(ctx context.Context, prefix string) error {
	if err := checkFillPrefix(prefix); err != nil {
		return err
	}
	cli, err := b.EtcdClient()
	if err != nil {
		return err
	}
	defer cli.Close()
	if _, err := cli.Delete(ctx, prefix, clientv3.WithPrefix()); err != nil {
		return fmt.Errorf("delete etcd keys under %s: %w", prefix, err)
	}
	return nil
}

// CompactAndDefragEtcd compacts the keyspace at its current revision and
// then defragments every running member, one at a time and the leader
// last, as the etcd operator's defrag controller and the documented manual
// procedure do (a defragmenting member blocks its reads and writes).
func (b *Box) CompactAndDefragEtcd(ctx context.Context) error {
	cli, err := b.EtcdClient()
	if err != nil {
		return err
	}
	defer cli.Close()
	resp, err := cli.Get(ctx, "/box-compact-probe")
	if err != nil {
		return fmt.Errorf("read etcd's revision: %w", err)
	}
	rev := resp.Header.Revision
	if _, err := cli.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil && !errors.Is(err, rpctypes.ErrCompacted) {
		return fmt.Errorf("compact etcd at revision %d: %w", rev, err)
	}
	var followers, leader []string
	for _, n := range b.masters() {
		if n.Etcd == nil || !n.Etcd.Running() {
			continue
		}
		url := n.Etcd.ClientURL()
		st, err := cli.Status(ctx, url)
		if err != nil {
			return fmt.Errorf("status of etcd member %s: %w", n.Name, err)
		}
		if st.Leader == st.Header.MemberId {
			leader = append(leader, url)
		} else {
			followers = append(followers, url)
		}
	}
	for _, url := range append(followers, leader...) {
		if err := b.defragMember(ctx, url); err != nil {
			return err
		}
	}
	return nil
}

// defragMember defragments the member at url through a client of its own,
// so that the call goes to that member whatever the balancer prefers.
func (b *Box) defragMember(ctx context.Context, url string) error {
	cli, err := b.EtcdClientFor(url)
	if err != nil {
		return err
	}
	defer cli.Close()
	if _, err := cli.Defragment(ctx, url); err != nil {
		return fmt.Errorf("defragment etcd member %s: %w", url, err)
	}
	return nil
}

// DisarmEtcdAlarms disarms every alarm the cluster has raised (etcdctl
// alarm disarm). A NOSPACE alarm disarmed while a member's database is
// still over its quota is raised again by the next write.
func (b *Box) DisarmEtcdAlarms(ctx context.Context) error {
	cli, err := b.EtcdClient()
	if err != nil {
		return err
	}
	defer cli.Close()
	if _, err := cli.AlarmDisarm(ctx, &clientv3.AlarmMember{}); err != nil {
		return fmt.Errorf("disarm etcd alarms: %w", err)
	}
	return nil
}
