package member

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/oc-recover/oc-recover/pkg/exitcode"
	"github.com/oc-recover/oc-recover/pkg/openshift"
	"github.com/oc-recover/oc-recover/pkg/runbook"
)

// The steps on the hosts themselves: the crashloop procedure's move of the
// member's manifest and data (OpenShift 4.5 documentation, Backup and
// restore, 2.4.2), and on hosts the Machine API does not manage, the wait
// for the administrator's new host (2.4.1).

func (p *Replacement) moveAsideStep() runbook.Step {
	node := p.Record.Node
	return runbook.Step{
		Title: fmt.Sprintf("on %s: stop the crashlooping etcd pod and move its data aside", node),
		Detail: []string{
			fmt.Sprintf("debug pod on %s, chroot /host: mkdir -p /var/lib/etcd-backup; mv /etc/kubernetes/manifests/etcd-pod.yaml /var/lib/etcd-backup/", node),
			"wait until the etcd container has stopped (crictl ps --name '^etcd$')",
			"mv /var/lib/etcd /tmp/etcd (or /tmp/etcd-<time> when /tmp/etcd exists); nothing is deleted",
		},
		Done: p.hostMovedDone,
		Run:  p.moveEtcdAside,
	}
}

// hostMovedDone: the member is gone from etcd already (the move comes
// before the removal). Nothing else is checked on the host: until the
// removal the move runs again, and the script skips what it already moved
// (no manifest left, an empty /var/lib/etcd).
func (p *Replacement) hostMovedDone(ctx context.Context) (bool, error) {
	return p.memberRemoved(ctx)
}

const moveEtcdAsideScript = `set -eu
manifest=/etc/kubernetes/manifests/etcd-pod.yaml
if [ -e "$manifest" ]; then
  mkdir -p /var/lib/etcd-backup
  dest=/var/lib/etcd-backup/etcd-pod.yaml
  [ -e "$dest" ] && dest="/var/lib/etcd-backup/etcd-pod.yaml.$(date +%Y%m%d%H%M%S)"
  mv "$manifest" "$dest"
  echo "moved $manifest to $dest"
fi
i=0
while crictl ps --name '^etcd$' --state running -q 2>/dev/null | grep -q .; do
  i=$((i + 1))
  if [ "$i" -gt 120 ]; then echo "the etcd container is still running 4 minutes after its manifest was moved" >&2; exit 1; fi
  sleep 2
done
echo "the etcd container is stopped"
if [ -d /var/lib/etcd ] && [ -n "$(ls -A /var/lib/etcd)" ]; then
  dest=/tmp/etcd
  [ -e "$dest" ] && dest="/tmp/etcd-$(date +%Y%m%d%H%M%S)"
  mv /var/lib/etcd "$dest"
  echo "moved /var/lib/etcd to $dest"
fi
`

func (p *Replacement) moveEtcdAside(ctx context.Context, out io.Writer) error {
	s, err := p.c.StartRunner(ctx, p.Record.Node)
	if err != nil {
		return err
	}
	defer s.Close(ctx)
	var stderr strings.Builder
	w := &prefixWriter{w: out, prefix: "  " + p.Record.Node + ": "}
	code, err := s.Host(ctx, moveEtcdAsideScript, nil, w, &stderr)
	w.flush()
	if err != nil {
		return fmt.Errorf("on %s: %w", p.Record.Node, err)
	}
	if code != 0 {
		return fmt.Errorf("on %s, moving etcd aside failed (exit %d): %s", p.Record.Node, code, strings.TrimSpace(stderr.String()))
	}
	return nil
}

func (p *Replacement) waitForHostStep() runbook.Step {
	return runbook.Step{
		Title: "a new control-plane host, created the way this one was (not managed by the Machine API)",
		Detail: []string{fmt.Sprintf("stop here: create the new host, approve its CSRs (`%s csr approve`), delete node %s once its host is gone, then run this command again", p.opts.command(), p.Record.Node),
			"continues once a Ready control-plane node has no etcd member"},
		Done: p.newHostPresent,
		Run:  p.waitForNewHost,
	}
}

// newHostPresent: a Ready control-plane node without an etcd member (the
// host built by hand to replace the lost one).
func (p *Replacement) newHostPresent(ctx context.Context) (bool, error) {
	nodes, err := openshift.ControlPlaneNodes(ctx, p.c.Kube)
	if err != nil {
		return false, err
	}
	ms, err := p.memberList(ctx)
	if err != nil {
		return false, err
	}
	members := map[string]bool{}
	for _, m := range ms {
		members[m.Name] = true
	}
	for i := range nodes {
		if openshift.NodeReady(&nodes[i]) && !members[nodes[i].Name] {
			return true, nil
		}
	}
	return false, nil
}

func (p *Replacement) waitForNewHost(_ context.Context, out io.Writer) error {
	fmt.Fprintf(out, "  The Machine API does not manage %s. Create the new control-plane host the way this one was created\n", p.Record.Node)
	fmt.Fprintf(out, "  (OpenShift 4.5 documentation, Backup and restore, 2.4.1 \"Replacing an unhealthy etcd member whose machine is not running or whose node is not ready\", step 3),\n  approve its CSRs (`%s csr approve`), delete node %s once its host is gone,\n", p.opts.command(), p.Record.Node)
	fmt.Fprintf(out, "  then run `%s member replace %s` again: it continues from here.\n", p.opts.command(), p.Record.Node)
	return exitcode.NeedsAttention(ErrStopped)
}

// prefixWriter prefixes each line written to it.
type prefixWriter struct {
	w      io.Writer
	prefix string
	buf    []byte
}

func (w *prefixWriter) Write(b []byte) (int, error) {
	w.buf = append(w.buf, b...)
	for {
		i := strings.IndexByte(string(w.buf), '\n')
		if i < 0 {
			return len(b), nil
		}
		fmt.Fprintf(w.w, "%s%s\n", w.prefix, w.buf[:i])
		w.buf = w.buf[i+1:]
	}
}

func (w *prefixWriter) flush() {
	if len(w.buf) > 0 {
		fmt.Fprintf(w.w, "%s%s\n", w.prefix, w.buf)
		w.buf = nil
	}
}
