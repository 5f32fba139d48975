package member

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/oc-recover/oc-recover/pkg/debugnode"
	"github.com/oc-recover/oc-recover/pkg/exitcode"
)

// fakeHost stands in for the debug pod on one node: it records the script
// it is given and answers with the output and exit code of the test.
type fakeHost struct {
	node, script   string
	stdout, stderr string
	code           int
	started        []string
	closed         bool
}

func (h *fakeHost) start(_ context.Context, node string) (debugnode.Runner, error) {
	h.started = append(h.started, node)
	h.node = node
	return h, nil
}

func (h *fakeHost) Node() string { return h.node }

func (h *fakeHost) Host(_ context.Context, script string, _ map[string]string, stdout, stderr io.Writer) (int, error) {
	h.script = script
	io.WriteString(stdout, h.stdout)
	io.WriteString(stderr, h.stderr)
	return h.code, nil
}

func (h *fakeHost) Fetch(context.Context, string, io.Writer, func(int64, int64)) (debugnode.Transfer, error) {
	return debugnode.Transfer{}, errors.New("not used")
}

func (h *fakeHost) Close(context.Context) error { h.closed = true; return nil }

func crashloopReplacement(h *fakeHost) *Replacement {
	rec := machineRecord(false)
	rec.Procedure, rec.Machine, rec.NewMachine = ProcedureCrashloop, "", ""
	p := newFakeCluster("").replacement(rec)
	p.c.StartRunner = h.start
	return p
}

// The move runs on the member's own node, moves the manifest to
// /var/lib/etcd-backup and the data to /tmp/etcd, and deletes nothing (as
// the plan says). Its output is shown line by line under the node's name.
func TestMoveEtcdAsideOnTheMembersNode(t *testing.T) {
	h := &fakeHost{stdout: "moved /etc/kubernetes/manifests/etcd-pod.yaml to /var/lib/etcd-backup/etcd-pod.yaml\nthe etcd container is stopped\nmoved /var/lib/etcd to /tmp/etcd"}
	var out bytes.Buffer
	if err := crashloopReplacement(h).moveEtcdAside(context.Background(), &out); err != nil {
		t.Fatal(err)
	}
	if len(h.started) != 1 || h.started[0] != "master-1" || !h.closed {
		t.Errorf("debug pods started on %v, closed %v; want one on master-1, closed", h.started, h.closed)
	}
	for _, want := range []string{
		"manifest=/etc/kubernetes/manifests/etcd-pod.yaml", "mkdir -p /var/lib/etcd-backup", `mv "$manifest" "$dest"`,
		"crictl ps --name '^etcd$' --state running", "dest=/tmp/etcd", `mv /var/lib/etcd "$dest"`,
	} {
		if !strings.Contains(h.script, want) {
			t.Errorf("the script lacks %q:\n%s", want, h.script)
		}
	}
	if strings.Contains(h.script, "rm ") {
		t.Errorf("the script deletes something:\n%s", h.script)
	}
	want := "  master-1: moved /etc/kubernetes/manifests/etcd-pod.yaml to /var/lib/etcd-backup/etcd-pod.yaml\n" +
		"  master-1: the etcd container is stopped\n" +
		"  master-1: moved /var/lib/etcd to /tmp/etcd\n"
	if out.String() != want {
		t.Errorf("output:\n%s\nwant:\n%s", out.String(), want)
	}
}

// A script that fails says where and why, and the debug pod is still
// cleaned up.
func TestMoveEtcdAsideFailureSaysWhy(t *testing.T) {
	h := &fakeHost{code: 1, stderr: "the etcd container is still running 4 minutes after its manifest was moved\n"}
	err := crashloopReplacement(h).moveEtcdAside(context.Background(), io.Discard)
	want := "on master-1, moving etcd aside failed (exit 1): the etcd container is still running 4 minutes after its manifest was moved"
	if err == nil || err.Error() != want {
		t.Errorf("err = %v, want %q", err, want)
	}
	if !h.closed {
		t.Error("the debug pod was left behind")
	}
}

// On hosts the Machine API does not manage, the run stops with "needs
// attention" and says what to build and which command continues, in the
// words the user runs the plugin with.
func TestWaitForNewHostStopsAndSaysHowToContinue(t *testing.T) {
	rec := machineRecord(false)
	rec.Procedure = ProcedureUPI
	p := newFakeCluster("").replacement(rec)
	p.opts.Command = "kubectl recover"
	var out bytes.Buffer
	err := p.waitForNewHost(context.Background(), &out)
	if !errors.Is(err, ErrStopped) || exitcode.FromError(err) != exitcode.CodeNeedsAttention {
		t.Errorf("err = %v (exit %d), want ErrStopped with exit %d", err, exitcode.FromError(err), exitcode.CodeNeedsAttention)
	}
	for _, want := range []string{"The Machine API does not manage master-1.", "`kubectl recover csr approve`", "delete node master-1 once its host is gone",
		"then run `kubectl recover member replace master-1` again: it continues from here."} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "oc recover") {
		t.Errorf("output names oc recover, not the command as invoked:\n%s", out.String())
	}
}

func (h *fakeHost) Upload(context.Context, io.Reader, int64, string, func(int64, int64)) (debugnode.Transfer, error) {
	return debugnode.Transfer{}, errors.New("no upload in this test")
}
