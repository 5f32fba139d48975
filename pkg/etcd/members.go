package etcd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/oc-recover/oc-recover/pkg/debugnode"
)

// memberTimeout bounds one membership request: a member that does not
// answer in this time will not answer the next.
const memberTimeout = 10 * time.Second

// Member is an etcd member as the member list shows it.
type Member struct {
	ID         uint64
	Name       string
	PeerURLs   []string
	ClientURLs []string
	IsLearner  bool
}

// MemberID is a member ID as etcdctl prints it (hex, lower case, no 0x),
// and as oc-recover shows and records it.
func MemberID(id uint64) string { return fmt.Sprintf("%x", id) }

// Members lists the members. The read is serializable: the member reached
// answers from its own state, so it answers without quorum too.
func (c *Conn) Members(ctx context.Context) ([]Member, error) {
	lctx, cancel := context.WithTimeout(ctx, memberTimeout)
	defer cancel()
	resp, err := c.Client.MemberList(lctx, clientv3.WithSerializable())
	if err != nil {
		return nil, fmt.Errorf("etcd member list through %s: %w", c.Pod, err)
	}
	return members(resp.Members), nil
}

// Remove removes member id, which must be the member named name. The
// member list is read again right before the removal, linearizably (the
// list the removal itself acts on): if id is now another node's member,
// nothing is removed. A member already gone is no error; removed says
// whether this call removed it.
func (c *Conn) Remove(ctx context.Context, id uint64, name string) (removed bool, err error) {
	lctx, cancel := context.WithTimeout(ctx, memberTimeout)
	defer cancel()
	list, err := c.Client.MemberList(lctx)
	if err != nil {
		return false, fmt.Errorf("etcd member list through %s: %w", c.Pod, err)
	}
	for _, m := range list.Members {
		if m.ID == id && m.Name != "" && m.Name != name {
			return false, fmt.Errorf("refusing: member %s is now named %s, not %s; nothing removed", MemberID(id), m.Name, name)
		}
	}
	if _, err := c.Client.MemberRemove(lctx, id); err != nil {
		if errors.Is(err, rpctypes.ErrMemberNotFound) {
			return false, nil
		}
		return false, fmt.Errorf("etcd member remove %s through %s: %w", MemberID(id), c.Pod, err)
	}
	return true, nil
}

// Health is one endpoint's answer to `etcdctl endpoint health`.
type Health struct {
	Endpoint string `json:"endpoint"`
	Health   bool   `json:"health"`
	Error    string `json:"error"`
}

// EndpointHealth runs `etcdctl endpoint health` for endpoints in the
// etcdctl container of the etcd pod pod, and returns the answers by
// endpoint. It runs there because the pod reaches the members' own
// addresses and this machine does not. Each check is a linearizable read
// through that member: it needs the member up and the cluster quorate.
func EndpointHealth(ctx context.Context, kube kubernetes.Interface, cfg *rest.Config, pod string, endpoints []string) (map[string]Health, error) {
	var out, errOut bytes.Buffer
	// The etcdctl container sets ETCDCTL_ENDPOINTS, and etcdctl refuses a
	// flag that shadows an environment variable.
	argv := []string{"env", "-u", "ETCDCTL_ENDPOINTS", "etcdctl", "endpoint", "health", "-w", "json", "--command-timeout=3s", "--endpoints=" + strings.Join(endpoints, ",")}
	code, err := debugnode.ExecInPod(ctx, kube, cfg, Namespace, pod, "etcdctl", argv, nil, &out, &errOut)
	if err != nil {
		return nil, fmt.Errorf("etcdctl endpoint health in %s: %w", pod, err)
	}
	var results []Health
	if jerr := json.Unmarshal(bytes.TrimSpace(out.Bytes()), &results); jerr != nil {
		// etcdctl exits 1 when an endpoint is unhealthy and still prints them.
		return nil, fmt.Errorf("etcdctl endpoint health in %s (exit %d): %s", pod, code, firstLine(errOut.String()))
	}
	health := map[string]Health{}
	for _, h := range results {
		health[h.Endpoint] = h
	}
	return health, nil
}

func members(list []*etcdserverpb.Member) []Member {
	var out []Member
	for _, m := range list {
		out = append(out, Member{ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs, IsLearner: m.IsLearner})
	}
	return out
}

// firstLine keeps an error message to one readable line.
func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}
