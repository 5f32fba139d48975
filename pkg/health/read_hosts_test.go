package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/oc-recover/oc-recover/pkg/debugnode"
	"github.com/oc-recover/oc-recover/pkg/openshift"
)

// fakeHost is a debug session whose host prints out, or fails.
type fakeHost struct {
	node   string
	out    string
	err    error
	closed *sync.Map
	active *atomic.Int32
	most   *atomic.Int32
}

func (f *fakeHost) Node() string { return f.node }

func (f *fakeHost) Host(_ context.Context, script string, _ map[string]string, stdout, _ io.Writer) (int, error) {
	n := f.active.Add(1)
	defer f.active.Add(-1)
	for {
		m := f.most.Load()
		if n <= m || f.most.CompareAndSwap(m, n) {
			break
		}
	}
	if f.err != nil {
		return -1, f.err
	}
	if script != HostScript {
		return 1, fmt.Errorf("unexpected script")
	}
	_, _ = io.WriteString(stdout, f.out)
	return 0, nil
}

func (f *fakeHost) Fetch(context.Context, string, io.Writer, func(int64, int64)) (debugnode.Transfer, error) {
	return debugnode.Transfer{}, errors.New("not here")
}

func (f *fakeHost) Close(context.Context) error {
	f.closed.Store(f.node, true)
	return nil
}

func hostNode(name string, controlPlane, ready bool) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{}}}
	if controlPlane {
		n.Labels[openshift.ControlPlaneLabel] = ""
	}
	status := corev1.ConditionTrue
	if !ready {
		status = corev1.ConditionUnknown
	}
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: status, Reason: "NodeStatusUnknown"}}
	return n
}

// The host script runs on each Ready control-plane node, a bounded number
// at once, and each debug session is closed, also where the script failed;
// a worker and a node that is not Ready get no debug pod.
func TestHostChecksRunOnTheControlPlane(t *testing.T) {
	kube := fake.NewClientset(hostNode("master-0", true, true), hostNode("master-1", true, true), hostNode("master-2", true, false),
		hostNode("master-3", true, true), hostNode("worker-0", false, true))
	var started sync.Map
	closed := &sync.Map{}
	var active, most atomic.Int32
	start := func(_ context.Context, n string) (debugnode.Runner, error) {
		started.Store(n, true)
		h := &fakeHost{node: n, out: hostOutput(dfHealthy, chronyHealthy, endClient, endServer, "tmpfs", ""), closed: closed, active: &active, most: &most}
		if n == "master-3" {
			h.err = errors.New("stream cut")
		}
		return h, nil
	}
	c := &cluster{Clients: Clients{Kube: kube}, opts: Options{Deep: true, StartRunner: start, HostParallel: 2, Now: hostsNow}}
	results := hostChecks(context.Background(), c)
	if len(results) != len(hostIDs) {
		t.Fatalf("%d results", len(results))
	}
	for _, n := range []string{"master-0", "master-1", "master-3"} {
		if _, ok := started.Load(n); !ok {
			t.Errorf("no debug pod on %s", n)
		}
		if _, ok := closed.Load(n); !ok {
			t.Errorf("the debug pod on %s was not closed", n)
		}
	}
	for _, n := range []string{"master-2", "worker-0"} {
		if _, ok := started.Load(n); ok {
			t.Errorf("a debug pod on %s", n)
		}
	}
	if most.Load() > 2 {
		t.Errorf("%d host scripts at once, bound 2", most.Load())
	}
	for _, r := range results {
		ev := strings.Join(r.Evidence, "\n")
		if r.Severity != Fail || !strings.Contains(ev, "master-2: not checked: node is not Ready") || !strings.Contains(ev, "master-3: could not run: stream cut") {
			t.Errorf("%s: %+v", r.ID, r)
		}
	}
}

// Without Deep the host checks neither run nor report.
func TestHostChecksNeedDeep(t *testing.T) {
	c := &cluster{Clients: Clients{Kube: fake.NewClientset(hostNode("master-0", true, true))},
		opts: Options{StartRunner: func(context.Context, string) (debugnode.Runner, error) {
			t.Error("a debug pod without Deep")
			return nil, errors.New("no")
		}}}
	if r := hostChecks(context.Background(), c); r != nil {
		t.Errorf("%+v", r)
	}
}

func (f *fakeHost) Upload(context.Context, io.Reader, int64, string, func(int64, int64)) (debugnode.Transfer, error) {
	return debugnode.Transfer{}, errors.New("no upload in this test")
}
