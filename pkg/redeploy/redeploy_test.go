package redeploy

import (
	"testing"

	operatorv1 "github.com/openshift/api/operator/v1"
)

func TestState(t *testing.T) {
	done := &operatorv1.OperatorCondition{Type: "NodeInstallerProgressing", Status: operatorv1.ConditionFalse, Reason: "AllNodesAtLatestRevision"}
	rolling := &operatorv1.OperatorCondition{Type: "NodeInstallerProgressing", Status: operatorv1.ConditionTrue, Reason: "NodeInstaller"}
	cases := []struct {
		name    string
		s       State
		done    bool
		summary string
		oldest  int32
	}{
		{"all at latest", State{Latest: 7, NodeRevs: map[string]int32{"a": 7, "b": 7, "c": 7}, Progressing: done}, true, "3 nodes are at revision 7", 7},
		{"rolling", State{Latest: 7, NodeRevs: map[string]int32{"a": 6, "b": 6, "c": 7}, Progressing: rolling}, false, "2 nodes are at revision 6; 1 node is at revision 7", 6},
		{"condition not yet updated", State{Latest: 7, NodeRevs: map[string]int32{"a": 7, "b": 7, "c": 7}, Progressing: rolling}, false, "3 nodes are at revision 7", 7},
		{"nodes behind despite the condition", State{Latest: 8, NodeRevs: map[string]int32{"a": 7}, Progressing: done}, false, "1 node is at revision 7", 7},
		{"no nodes", State{Latest: 1, NodeRevs: map[string]int32{}, Progressing: done}, false, "", -1},
	}
	for _, c := range cases {
		if c.s.Done() != c.done || c.s.Summary() != c.summary || c.s.Oldest() != c.oldest {
			t.Errorf("%s: Done=%v Summary=%q Oldest=%d", c.name, c.s.Done(), c.s.Summary(), c.s.Oldest())
		}
	}
}

func TestPatch(t *testing.T) {
	if got := string(Patch("recovery-x")); got != `{"spec":{"forceRedeploymentReason":"recovery-x"}}` {
		t.Errorf("Patch = %s", got)
	}
}
