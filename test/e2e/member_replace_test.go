package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/oc-recover/oc-recover/pkg/member"
	"github.com/oc-recover/oc-recover/test/box"
	"github.com/oc-recover/oc-recover/test/internal/boxtest"
)

// replaced is the end state of a replacement, in terms that do not depend
// on generated IDs: which nodes have members, all healthy, what is left of
// the old node, and whether the quorum guard and the record are back.
type replaced struct {
	Members   []string // node names with a member, sorted
	Healthy   bool     // every member answers a linearizable read
	Machines  []string // control-plane Machines and their phase
	Secrets   []string // etcd member secrets
	Overrides string   // etcd/cluster spec.unsupportedConfigOverrides
	Record    bool     // the replacement record is still on etcd/cluster
	Leftovers int      // debug namespaces left
}

func endState(t *testing.T, b *box.Box) replaced {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var s replaced
	cli, err := b.EtcdClient()
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	list, err := cli.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.Healthy = true
	for _, m := range list.Members {
		s.Members = append(s.Members, m.Name)
		if len(m.ClientURLs) == 0 {
			s.Healthy = false
			continue
		}
		one, err := b.EtcdClientFor(m.ClientURLs[0])
		if err != nil {
			t.Fatal(err)
		}
		hctx, hcancel := context.WithTimeout(ctx, 3*time.Second)
		if _, err := one.Get(hctx, "health"); err != nil {
			s.Healthy = false
		}
		hcancel()
		one.Close()
	}
	sort.Strings(s.Members)
	machines, err := b.Machine.MachineV1beta1().Machines("openshift-machine-api").List(ctx, metav1.ListOptions{LabelSelector: "machine.openshift.io/cluster-api-machine-role=master"})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range machines.Items {
		phase, node := "", ""
		if m.Status.Phase != nil {
			phase = *m.Status.Phase
		}
		if m.Status.NodeRef != nil {
			node = m.Status.NodeRef.Name
		}
		s.Machines = append(s.Machines, strings.TrimPrefix(m.Name, b.InfraID+"-")+"="+phase+"/"+node)
	}
	sort.Strings(s.Machines)
	secrets, err := b.Kube.CoreV1().Secrets("openshift-etcd").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The etcd operator re-issues a control-plane node's secrets while its
	// Node exists, and leaves those of a deleted Node for days: only the
	// secrets of the nodes there are now count.
	nodes, err := b.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "node-role.kubernetes.io/master"})
	if err != nil {
		t.Fatal(err)
	}
	for _, sec := range secrets.Items {
		for _, n := range nodes.Items {
			for _, kind := range []string{"peer", "serving", "serving-metrics"} {
				if sec.Name == "etcd-"+kind+"-"+n.Name {
					s.Secrets = append(s.Secrets, sec.Name)
				}
			}
		}
	}
	sort.Strings(s.Secrets)
	etcd, err := b.Operator.OperatorV1().Etcds().Get(ctx, "cluster", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.Overrides = string(etcd.Spec.UnsupportedConfigOverrides.Raw)
	_, s.Record = etcd.Annotations[member.RecordAnnotation]
	ns, err := b.Kube.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/managed-by=oc-recover"})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range ns.Items {
		if n.DeletionTimestamp == nil {
			s.Leftovers++
		}
	}
	return s
}

func (s replaced) String() string {
	data, _ := json.MarshalIndent(s, "", "  ")
	return string(data)
}

// wantReplaced is the end state of replacing master-0's machine on a
// three-node box: master-3 took its place.
func wantMachineReplaced() replaced {
	return replaced{
		Members:  []string{"master-1", "master-2", "master-3"},
		Healthy:  true,
		Machines: []string{"master-1=Running/master-1", "master-2=Running/master-2", "master-3=Running/master-3"},
		Secrets: []string{"etcd-peer-master-1", "etcd-peer-master-2", "etcd-peer-master-3",
			"etcd-serving-master-1", "etcd-serving-master-2", "etcd-serving-master-3",
			"etcd-serving-metrics-master-1", "etcd-serving-metrics-master-2", "etcd-serving-metrics-master-3"},
	}
}

// memberIDOf is node's member ID as member status shows it, "" when none.
func memberIDOf(t *testing.T, b *box.Box, node string) string {
	t.Helper()
	if id, ok := boxtest.MemberIDs(t, b)[node]; ok {
		return hexID(id)
	}
	return ""
}

// §2.4.1 with the Machine API: master-0's machine is stopped. With --backup
// the command takes a backup first, then removes the member, deletes its
// secrets, replaces the Machine by master-3, lifts the quorum guard for the
// etcd rollout, and ends with three healthy members and the guard back.
func TestMemberReplaceReplacesTheMachine(t *testing.T) {
	t.Parallel()
	b := boxtest.StartBox(t, box.Options{})
	ctx := context.Background()
	boxtest.StopMachineAndWait(t, b, "master-0")
	oldID := memberIDOf(t, b, "master-0")
	backups := t.TempDir()

	r := tools.Run(t, b, "", "kubectl-recover", "member", "replace", "master-0", "--backup", "--backup-dir", backups, "--yes", "--timeout", "4m")
	if r.Code != 0 {
		t.Fatalf("member replace: %s", r)
	}
	for _, want := range []string{"MachineNotRunning", "Backup: " + backups, "member " + oldID + " removed", "secret openshift-etcd/etcd-peer-master-0 deleted",
		"machine " + b.InfraID + "-master-3 created", "phase Running", "put back", "The etcd member of master-0 was replaced"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("the output does not say %q:\n%s", want, r)
		}
	}
	if got, want := endState(t, b), wantMachineReplaced(); got.String() != want.String() {
		t.Errorf("end state:\n%s\nwant:\n%s", got, want)
	}
	if _, err := b.Kube.CoreV1().Nodes().Get(ctx, "master-0", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("node master-0 still there: %v", err)
	}
	m, err := b.Machine.MachineV1beta1().Machines("openshift-machine-api").Get(ctx, b.InfraID+"-master-3", metav1.GetOptions{})
	if err != nil || m.Annotations[member.ReplacesNodeAnnotation] != "master-0" || m.Spec.ProviderID == nil {
		t.Errorf("the new machine: %v %+v", err, m)
	}
	entries, _ := os.ReadDir(backups)
	if len(entries) != 1 {
		t.Errorf("--backup made %d backups in %s", len(entries), backups)
	}
	rep, sr := memberStatus(t, b)
	if sr.Code != 0 || rep.Verdict != member.VerdictHealthy {
		t.Errorf("member status after the replacement: %s", sr)
	}
}

// §2.4.2: master-1's etcd pod crash-loops. Its manifest goes to
// /var/lib/etcd-backup, its data to /tmp (moved, not deleted), the member
// is removed, its secrets re-issued, etcd redeployed: master-1 has a new,
// healthy member, and the quorum guard is back as it was.
func TestMemberReplaceRebuildsACrashloopingMember(t *testing.T) {
	t.Parallel()
	b := boxtest.StartBox(t, box.Options{})
	ctx := context.Background()
	backups := t.TempDir()
	if r := tools.Run(t, b, "", "kubectl-recover", "backup", "--output-dir", filepath.Join(backups, "b1")); r.Code != 0 {
		t.Fatalf("backup: %s", r)
	}
	if err := b.CrashLoopEtcd("master-1", true); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitForEtcdMembersAvailable(ctx, "2 of 3 members are available, master-1 is unhealthy"); err != nil {
		t.Fatal(err)
	}
	oldID := memberIDOf(t, b, "master-1")
	r := tools.Run(t, b, "", "kubectl-recover", "member", "replace", "master-1", "--backup-dir", backups, "--yes", "--timeout", "4m")
	if r.Code != 0 {
		t.Fatalf("member replace: %s", r)
	}
	for _, want := range []string{"EtcdPodCrashlooping", "moved /etc/kubernetes/manifests/etcd-pod.yaml to /var/lib/etcd-backup/etcd-pod.yaml", "moved /var/lib/etcd to /tmp/etcd",
		"member " + oldID + " removed", "forcing a redeployment", "3 members, all healthy"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("the output does not say %q:\n%s", want, r)
		}
	}
	if newID := memberIDOf(t, b, "master-1"); newID == "" || newID == oldID {
		t.Errorf("master-1's member: %q, was %q", newID, oldID)
	}
	got := endState(t, b)
	if strings.Join(got.Members, ",") != "master-0,master-1,master-2" || !got.Healthy || got.Overrides != "" || got.Record || got.Leftovers != 0 || len(got.Secrets) != 9 {
		t.Errorf("end state: %s", got)
	}
	root := b.Node("master-1").Sandbox.Root
	for _, p := range []string{"var/lib/etcd-backup/etcd-pod.yaml", "tmp/etcd/member"} {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Errorf("on master-1, /%s: %v", p, err)
		}
	}
}

// stepLine matches the line a replacement prints when it starts a step.
var stepLine = regexp.MustCompile(`^\[(\d+)/(\d+)\] (.*)$`)

// runUntilStep runs a replacement and sends sig when it starts step k
// (counting from 1), as an administrator's Ctrl-C or a crash would; it
// returns what was printed and whether the signal was sent.
func runUntilStep(t *testing.T, b *box.Box, k int, sig syscall.Signal, args ...string) (string, bool) {
	t.Helper()
	return runUntil(t, b, func(line string) bool {
		m := stepLine.FindStringSubmatch(line)
		return m != nil && m[1] == fmt.Sprint(k) && !strings.HasSuffix(line, "already done")
	}, sig, args...)
}

// runUntil runs the plugin and sends sig once it prints a line (on either
// stream) that at matches; it returns what was printed, then the exit, and
// whether the signal was sent.
func runUntil(t *testing.T, b *box.Box, at func(line string) bool, sig syscall.Signal, args ...string) (string, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(tools.BinDir, "kubectl-recover"), args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+b.Kubeconfig, "HOME="+t.TempDir())
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	cmd.Stdout, cmd.Stderr = pw, pw
	err = cmd.Start()
	pw.Close()
	if err != nil {
		t.Fatal(err)
	}
	var all bytes.Buffer
	sent := false
	sc := bufio.NewScanner(pr)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		fmt.Fprintln(&all, line)
		if !sent && at(line) {
			_ = cmd.Process.Signal(sig)
			sent = true
		}
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintf(&all, "(reading the output: %v)\n", err)
	}
	_, _ = io.Copy(io.Discard, pr)
	werr := cmd.Wait()
	fmt.Fprintf(&all, "(exit: %v)\n", werr)
	return all.String(), sent
}

// A replacement killed at the start of every step in turn (SIGKILL: no
// clean-up at all), each time run again, ends exactly as an uninterrupted
// one. One of the interruptions is a Ctrl-C while the new Machine is
// awaited: the quorum guard is put back before the command exits, the
// record stays, and the next run lifts the guard again.
func TestMemberReplaceResumesAfterEveryInterruption(t *testing.T) {
	t.Parallel()
	b := boxtest.StartBox(t, box.Options{})
	ctx := context.Background()
	boxtest.StopMachineAndWait(t, b, "master-0")
	args := []string{"member", "replace", "master-0", "--force", "--yes", "--timeout", "3m"}

	// record, remove, secrets, guard, delete machine, create machine,
	// redeploy, verify, guard back: interrupt at the start of 2..8.
	// A step the cluster shows done already is skipped, not started: when
	// the steps left were all done, a run completes without a signal.
	completed := false
	for k := 2; k <= 8 && !completed; k++ {
		sig := syscall.SIGKILL
		if k == 6 {
			sig = syscall.SIGINT
		}
		out, sent := runUntilStep(t, b, k, sig, args...)
		if !sent {
			if !strings.Contains(out, fmt.Sprintf("[%d/9] ", k)) || !strings.Contains(out, "was replaced") || !strings.HasSuffix(out, "(exit: <nil>)\n") {
				t.Fatalf("the replacement neither started step %d nor completed:\n%s", k, out)
			}
			t.Logf("step %d was done already; the run completed", k)
			completed = true
			break
		}
		t.Logf("%v at step %d", sig, k)
		if sig == syscall.SIGINT {
			s := endState(t, b)
			if !strings.Contains(out, "interrupted") || (s.Overrides != "" && s.Overrides != "{}") || !s.Record || s.Leftovers != 0 {
				t.Errorf("after Ctrl-C the guard must be back and the record kept: %s\n%s", s, out)
			}
		}
	}
	if !completed {
		r := tools.Run(t, b, "", "kubectl-recover", args...)
		if r.Code != 0 || !strings.Contains(r.Stdout, "Resuming the replacement") {
			t.Fatalf("the last run: %s", r)
		}
	}
	if got, want := endState(t, b), wantMachineReplaced(); got.String() != want.String() {
		t.Errorf("end state after interruptions:\n%s\nwant:\n%s", got, want)
	}
	if _, err := b.Kube.CoreV1().Nodes().Get(ctx, "master-0", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("node master-0 still there: %v", err)
	}
}

// §2.4.1 on hosts the Machine API does not manage: the command removes the
// member and its secrets, then stops (exit 3) and says what to build. Run
// again before the new host exists, it stops there again; once the admin
// has built it and deleted the old Node, it finishes.
func TestMemberReplaceStopsForAUserProvisionedHostAndContinues(t *testing.T) {
	t.Parallel()
	b := boxtest.StartBox(t, box.Options{UserProvisioned: true})
	ctx := context.Background()
	boxtest.StopMachineAndWait(t, b, "master-0")
	oldID := memberIDOf(t, b, "master-0")
	args := []string{"member", "replace", "master-0", "--force", "--yes", "--timeout", "3m"}

	r := tools.Run(t, b, "", "kubectl-recover", args...)
	if r.Code != 3 || !strings.Contains(r.Stdout, "does not manage master-0") || !strings.Contains(r.Stdout, "member "+oldID+" removed") || !strings.Contains(r.Stdout, "run `kubectl recover member replace master-0` again") {
		t.Fatalf("the first run must stop with exit 3 after removing the member: %s", r)
	}
	if id := memberIDOf(t, b, "master-0"); id != "" {
		t.Fatalf("master-0's member %s is still there", id)
	}
	r = tools.Run(t, b, "", "kubectl-recover", args...)
	if r.Code != 3 || !strings.Contains(r.Stdout, "Resuming") {
		t.Fatalf("without a new host the re-run must stop again: %s", r)
	}
	// While it is in progress, no other replacement starts, and the one in
	// progress continues only for the member it removed.
	refuse(t, b, 1, "a replacement of the member of master-0 is in progress", "master-1", "--force", "--yes")
	refuse(t, b, 1, "does not match the replacement in progress, of member "+oldID, "master-0", "--member-id", "abc123", "--force", "--yes")

	// The administrator builds the new host and removes the old Node.
	if _, err := b.AddHost(ctx, "master-3", true); err != nil {
		t.Fatal(err)
	}
	if err := b.Kube.CoreV1().Nodes().Delete(ctx, "master-0", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	r = tools.Run(t, b, "", "kubectl-recover", args...)
	if r.Code != 0 || !strings.Contains(r.Stdout, "3 members, all healthy") {
		t.Fatalf("with the new host the replacement must finish: %s", r)
	}
	got := endState(t, b)
	if strings.Join(got.Members, ",") != "master-1,master-2,master-3" || !got.Healthy || got.Overrides != "" || got.Record || got.Leftovers != 0 || len(got.Machines) != 0 {
		t.Errorf("end state: %s", got)
	}
}

// The crashloop procedure interrupted by Ctrl-C while its debug pod works
// on the host, then killed at the start of the member removal: the debug
// namespace is gone after the Ctrl-C, nothing on the host is moved twice,
// and the next run ends as an uninterrupted one.
func TestMemberReplaceCrashloopResumes(t *testing.T) {
	t.Parallel()
	b := boxtest.StartBox(t, box.Options{})
	ctx := context.Background()
	if err := b.CrashLoopEtcd("master-2", true); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitForEtcdMembersAvailable(ctx, "2 of 3 members are available, master-2 is unhealthy"); err != nil {
		t.Fatal(err)
	}
	oldID := memberIDOf(t, b, "master-2")
	args := []string{"member", "replace", "master-2", "--force", "--yes", "--timeout", "3m"}
	if out, sent := runUntilStep(t, b, 2, syscall.SIGINT, args...); !sent || !strings.Contains(out, "interrupted") {
		t.Fatalf("Ctrl-C during the host step:\n%s", out)
	}
	if s := endState(t, b); s.Leftovers != 0 {
		t.Errorf("a debug namespace was left after Ctrl-C: %s", s)
	}
	if out, sent := runUntilStep(t, b, 3, syscall.SIGKILL, args...); !sent {
		t.Fatalf("the re-run never reached the member removal:\n%s", out)
	}
	r := tools.Run(t, b, "", "kubectl-recover", args...)
	if r.Code != 0 || !strings.Contains(r.Stdout, "Resuming") {
		t.Fatalf("the last run: %s", r)
	}
	if newID := memberIDOf(t, b, "master-2"); newID == "" || newID == oldID {
		t.Errorf("master-2's member: %q, was %q", newID, oldID)
	}
	got := endState(t, b)
	if strings.Join(got.Members, ",") != "master-0,master-1,master-2" || !got.Healthy || got.Overrides != "" || got.Record || len(got.Secrets) != 9 {
		t.Errorf("end state: %s", got)
	}
	// Moved once: one copy of the manifest and of the data, nothing else.
	root := b.Node("master-2").Sandbox.Root
	for dir, want := range map[string]int{"var/lib/etcd-backup": 1, "tmp": 1} {
		entries, err := os.ReadDir(filepath.Join(root, dir))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), "etcd") {
				n++
			}
		}
		if n != want {
			t.Errorf("/%s holds %d etcd copies, want %d", dir, n, want)
		}
	}
}
