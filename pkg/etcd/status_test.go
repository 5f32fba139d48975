package etcd

import "testing"

// What etcdctl 3.5 prints for `endpoint status -w json` when one of three
// endpoints does not answer: the list of those that did on stdout, a line
// per failed one on stderr.
const statusJSON = `[{"Endpoint":"https://10.0.0.1:2379","Status":{"header":{"cluster_id":17237436991929493444,"member_id":9372538179322589801,"revision":7712,"raft_term":3},"version":"3.5.9","dbSize":25165824,"leader":9372538179322589801,"raftIndex":9001,"raftTerm":3,"raftAppliedIndex":9001,"dbSizeInUse":12582912}},
{"Endpoint":"https://10.0.0.2:2379","Status":{"header":{"cluster_id":17237436991929493444,"member_id":10501334649042878790,"revision":7712,"raft_term":3},"version":"3.5.9","dbSize":25165824,"leader":9372538179322589801,"raftIndex":9001,"raftTerm":3,"raftAppliedIndex":8990,"dbSizeInUse":12582912,"errors":["memberID:1 alarm:NOSPACE "]}}]`

const statusStderr = "{\"level\":\"warn\",\"msg\":\"retrying of unary invoker failed\"}\n" +
	"Failed to get the status of endpoint https://10.0.0.3:2379 (context deadline exceeded)\n"

func TestParseEndpointStatus(t *testing.T) {
	eps := []string{"https://10.0.0.1:2379", "https://10.0.0.2:2379", "https://10.0.0.3:2379"}
	got, err := parseEndpointStatus([]byte(statusJSON), statusStderr, eps)
	if err != nil {
		t.Fatal(err)
	}
	one := got["https://10.0.0.1:2379"]
	if one.MemberID != 9372538179322589801 || one.Leader != one.MemberID || one.DBSize != 25165824 || one.DBSizeInUse != 12582912 || one.Version != "3.5.9" || one.RaftIndex != 9001 || one.Err != "" {
		t.Errorf("first endpoint: %+v", one)
	}
	if two := got["https://10.0.0.2:2379"]; two.RaftAppliedIndex != 8990 || len(two.Errors) != 1 {
		t.Errorf("second endpoint: %+v", two)
	}
	if three := got["https://10.0.0.3:2379"]; three.Err != "context deadline exceeded" {
		t.Errorf("the endpoint that did not answer: %+v", three)
	}
}

func TestParseEndpointStatusWhenNoneAnswers(t *testing.T) {
	got, err := parseEndpointStatus(nil, "Failed to get the status of endpoint https://10.0.0.1:2379 (connection refused)\n", []string{"https://10.0.0.1:2379", "https://10.0.0.2:2379"})
	if err != nil {
		t.Fatal(err)
	}
	if got["https://10.0.0.1:2379"].Err != "connection refused" || got["https://10.0.0.2:2379"].Err != "no answer" {
		t.Errorf("%+v", got)
	}
	if _, err := parseEndpointStatus(nil, "Error: unknown flag\n", []string{"https://10.0.0.1:2379"}); err == nil {
		t.Error("no list and no per-endpoint failure is an error")
	}
}
