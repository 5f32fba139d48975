package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/oc-recover/oc-recover/pkg/member"
	"github.com/oc-recover/oc-recover/test/box"
	"github.com/oc-recover/oc-recover/test/internal/boxtest"
)

func memberStatus(t *testing.T, b *box.Box) (*member.Report, boxtest.Result) {
	t.Helper()
	r := tools.Run(t, b, "", "kubectl-recover", "member", "status", "-o", "json")
	var rep member.Report
	if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil {
		t.Fatalf("member status -o json: %v\n%s", err, r)
	}
	return &rep, r
}

// On a healthy cluster every member is Healthy, with its real ID and URLs.
func TestMemberStatusHealthy(t *testing.T) {
	rep, r := memberStatus(t, shared)
	if r.Code != 0 || rep.Verdict != member.VerdictHealthy || len(rep.Members) != 3 || len(rep.ExtraMembers) != 0 {
		t.Fatalf("member status on a healthy cluster: %+v\n%s", rep, r)
	}
	cli, err := shared.EtcdClient()
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	list, err := cli.MemberList(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for _, m := range list.Members {
		ids[m.Name] = strings.ToLower(strings.TrimLeft(strings.ToLower(hexID(m.ID)), "0"))
	}
	for _, s := range rep.Members {
		if s.Diagnosis != member.Healthy || s.Healthy == nil || !*s.Healthy || s.InstanceState != "running" || s.NodeReady != "True" || s.PodState != "Running" {
			t.Errorf("%s: %+v", s.Node, s)
		}
		if strings.TrimLeft(s.MemberID, "0") != ids[s.Node] || len(s.ClientURLs) != 1 || !strings.HasSuffix(s.ClientURLs[0], ":2379") {
			t.Errorf("%s: member %s %v, etcd says %s", s.Node, s.MemberID, s.ClientURLs, ids[s.Node])
		}
	}
	r = tools.Run(t, shared, "", "kubectl-recover", "member", "status")
	if r.Code != 0 || !strings.Contains(r.Stdout, "Verdict: Healthy") || !strings.Contains(r.Stdout, "etcd operator: 3 members are available") {
		t.Errorf("member status table: %s", r)
	}
	if r.Stderr != "" {
		t.Errorf("member status printed to stderr on a healthy cluster (client-go noise?): %s", r.Stderr)
	}
	if r := tools.Run(t, shared, "", "kubectl-recover", "member", "status", "-o", "wide"); r.Code != 2 {
		t.Errorf("member status -o wide: want exit 2: %s", r)
	}
}

// A stopped machine (OpenShift 4.5 documentation, Backup and restore, 2.3
// "Determining the state of the unhealthy etcd member", step 1) and a
// crash-looping etcd pod (step 3) are told apart, and the verdict names the procedure; exit 3.
func TestMemberStatusDiagnosesTheUnhealthyMember(t *testing.T) {
	t.Parallel()
	b := boxtest.StartBox(t, box.Options{})
	ctx := context.Background()
	boxtest.StopMachineAndWait(t, b, "master-1")
	rep, r := memberStatus(t, b)
	if r.Code != 3 || rep.Verdict != member.VerdictReplaceMember || rep.Target != "master-1" || !strings.Contains(rep.Procedure, `2.4.1 "Replacing an unhealthy etcd member whose machine is not running or whose node is not ready"`) {
		t.Fatalf("stopped machine: %+v\n%s", rep, r)
	}
	for _, s := range rep.Members {
		want := member.Healthy
		if s.Node == "master-1" {
			want = member.MachineNotRunning
			if s.InstanceState != "stopped" || !s.Unreachable || s.Healthy == nil || *s.Healthy {
				t.Errorf("master-1: %+v", s)
			}
		}
		if s.Diagnosis != want {
			t.Errorf("%s: diagnosis %s, want %s", s.Node, s.Diagnosis, want)
		}
	}

	if err := b.StartMachine(ctx, "master-1"); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitForEtcdMembersAvailable(ctx, "3 members are available"); err != nil {
		t.Fatal(err)
	}
	if err := b.CrashLoopEtcd("master-2", true); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitForEtcdMembersAvailable(ctx, "2 of 3 members are available, master-2 is unhealthy"); err != nil {
		t.Fatal(err)
	}
	rep, r = memberStatus(t, b)
	if r.Code != 3 || rep.Verdict != member.VerdictReplaceMember || rep.Target != "master-2" || !strings.Contains(rep.Procedure, `2.4.2 "Replacing an unhealthy etcd member whose etcd pod is crashlooping"`) {
		t.Fatalf("crash-looping etcd: %+v\n%s", rep, r)
	}
	for _, s := range rep.Members {
		if s.Node == "master-2" && (s.Diagnosis != member.EtcdPodCrashlooping || s.PodState != "CrashLoopBackOff" || s.Restarts == 0) {
			t.Errorf("master-2: %+v", s)
		}
	}
	r = tools.Run(t, b, "", "kubectl-recover", "member", "status")
	if r.Code != 3 || !strings.Contains(r.Stdout, "Verdict: ReplaceMember master-2") || !strings.Contains(r.Stdout, "CrashLoopBackOff") {
		t.Errorf("member status table: %s", r)
	}
}
