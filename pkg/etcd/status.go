package etcd

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/oc-recover/oc-recover/pkg/debugnode"
)

// Status is one endpoint's answer to `etcdctl endpoint status`: what the
// member says of itself, or why it did not answer (Err).
type Status struct {
	Endpoint         string
	MemberID         uint64
	Version          string
	DBSize           int64
	DBSizeInUse      int64
	Leader           uint64
	RaftTerm         uint64
	RaftIndex        uint64
	RaftAppliedIndex uint64
	Errors           []string
	Err              string
}

// etcdctl -w json prints a list of {Endpoint, Status} where Status is the
// Maintenance Status response as the protobuf JSON names it.
type statusLine struct {
	Endpoint string                       `json:"Endpoint"`
	Status   *etcdserverpb.StatusResponse `json:"Status"`
}

// failedEndpoint matches etcdctl's line for an endpoint it could not ask:
// "Failed to get the status of endpoint https://10.0.0.1:2379 (context deadline exceeded)".
var failedEndpoint = regexp.MustCompile(`(?i)failed to get the status of endpoint (\S+) \((.*)\)`)

// EndpointStatus runs `etcdctl endpoint status` for endpoints in the
// etcdctl container of the etcd pod pod (one exec, whatever the number of
// members: the pod reaches the members' own addresses, this machine does
// not), and returns every endpoint's answer by endpoint. An endpoint that
// did not answer is there with Err set.
func EndpointStatus(ctx context.Context, kube kubernetes.Interface, cfg *rest.Config, pod string, endpoints []string) (map[string]Status, error) {
	var out, errOut bytes.Buffer
	argv := []string{"env", "-u", "ETCDCTL_ENDPOINTS", "etcdctl", "endpoint", "status", "-w", "json", "--command-timeout=3s", "--endpoints=" + strings.Join(endpoints, ",")}
	code, err := debugnode.ExecInPod(ctx, kube, cfg, Namespace, pod, "etcdctl", argv, nil, &out, &errOut)
	if err != nil {
		return nil, fmt.Errorf("etcdctl endpoint status in %s: %w", pod, err)
	}
	statuses, perr := parseEndpointStatus(out.Bytes(), errOut.String(), endpoints)
	if perr != nil {
		return nil, fmt.Errorf("etcdctl endpoint status in %s (exit %d): %v: %s", pod, code, perr, firstLine(errOut.String()))
	}
	return statuses, nil
}

func parseEndpointStatus(stdout []byte, stderr string, endpoints []string) (map[string]Status, error) {
	out := map[string]Status{}
	for _, ep := range endpoints {
		out[ep] = Status{Endpoint: ep, Err: "no answer"}
	}
	for _, m := range failedEndpoint.FindAllStringSubmatch(stderr, -1) {
		out[m[1]] = Status{Endpoint: m[1], Err: m[2]}
	}
	stdout = bytes.TrimSpace(stdout)
	if len(stdout) == 0 {
		// Every endpoint failed: etcdctl printed no list at all.
		if len(failedEndpoint.FindAllString(stderr, -1)) == 0 {
			return nil, fmt.Errorf("no status printed")
		}
		return out, nil
	}
	var lines []statusLine
	if err := json.Unmarshal(stdout, &lines); err != nil {
		return nil, err
	}
	for _, l := range lines {
		if l.Status == nil {
			continue
		}
		s := Status{Endpoint: l.Endpoint, Version: l.Status.Version, DBSize: l.Status.DbSize, DBSizeInUse: l.Status.DbSizeInUse,
			Leader: l.Status.Leader, RaftTerm: l.Status.RaftTerm, RaftIndex: l.Status.RaftIndex,
			RaftAppliedIndex: l.Status.RaftAppliedIndex, Errors: l.Status.Errors}
		if l.Status.Header != nil {
			s.MemberID = l.Status.Header.MemberId
		}
		out[l.Endpoint] = s
	}
	return out, nil
}

// Alarm is one raised etcd alarm: NOSPACE (the backend reached its quota:
// the cluster takes no more writes) or CORRUPT (a member's data differs
// from the others').
type Alarm struct {
	MemberID uint64
	Alarm    string
}

// Alarms lists the cluster's raised alarms. The list goes through raft,
// so it needs quorum.
func (c *Conn) Alarms(ctx context.Context) ([]Alarm, error) {
	lctx, cancel := context.WithTimeout(ctx, memberTimeout)
	defer cancel()
	resp, err := c.Client.AlarmList(lctx)
	if err != nil {
		return nil, fmt.Errorf("etcd alarm list through %s: %w", c.Pod, err)
	}
	var out []Alarm
	for _, a := range resp.Alarms {
		out = append(out, Alarm{MemberID: a.MemberID, Alarm: a.Alarm.String()})
	}
	return out, nil
}
