package restore

import (
	"bytes"
	"context"
	"io"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/oc-recover/oc-recover/pkg/debugnode"
	"github.com/oc-recover/oc-recover/pkg/openshift"
)

// Standing is where the restores of this cluster stand, as the live API
// and the control-plane hosts show them: what `restore status` prints at 3
// a.m., when one was interrupted, seems stuck or ended oddly. Reading it
// changes nothing.
type Standing struct {
	// Journal is the backup directory's unended journal, when one was named.
	Journal *Journal `json:"journal,omitempty"`
	// APIError says why the API could not be read; the rest is then what
	// the journal says.
	APIError string `json:"apiError,omitempty"`
	// Fired are the restores recorded in the live API (phases A and B):
	// their sentinel ConfigMaps.
	Fired []Fired `json:"fired,omitempty"`
	// Record is the restore in phase C, on etcd/cluster.
	Record *Record        `json:"record,omitempty"`
	Hosts  []HostStanding `json:"hosts,omitempty"`
}

// Fired is a restore's sentinel.
type Fired struct {
	ID           string `json:"id"`
	RecoveryNode string `json:"recoveryNode"`
	FiredAt      string `json:"firedAt"`
	Backup       string `json:"backup"`
}

// HostStanding is one control-plane host's restore directories.
type HostStanding struct {
	Node string `json:"node"`
	// Error says why the host could not be looked at.
	Error    string          `json:"error,omitempty"`
	Restores []HostRestoreAt `json:"restores,omitempty"`
}

// HostRestoreAt is one restore directory on a host: its markers (name →
// time), its unit's state and the end of its log.
type HostRestoreAt struct {
	Dir     string            `json:"dir"`
	Markers map[string]string `json:"markers"`
	Unit    string            `json:"unit"`
	Log     []string          `json:"log,omitempty"`
}

// Stand reads where the restores stand: the sentinels and the record in
// the API, and every Ready control-plane host's restore directories
// through a debug pod each (one not Ready is named, with what to read on
// its console).
func Stand(ctx context.Context, c Clients, start debugnode.StartFunc) (*Standing, error) {
	s := &Standing{}
	cms, err := c.Kube.CoreV1().ConfigMaps(SentinelNamespace).List(ctx, metav1.ListOptions{LabelSelector: debugnode.ManagedByLabel + "=" + debugnode.ManagedByValue})
	if err != nil {
		return nil, err
	}
	for _, cm := range cms.Items {
		if strings.HasPrefix(cm.Name, SentinelPrefix) {
			s.Fired = append(s.Fired, Fired{ID: cm.Data["id"], RecoveryNode: cm.Data["recoveryNode"], FiredAt: cm.Data["firedAt"], Backup: cm.Data["backup"]})
		}
	}
	if s.Record, err = ReadRecord(ctx, c); err != nil {
		return nil, err
	}
	nodes, err := openshift.ControlPlaneNodes(ctx, c.Kube)
	if err != nil {
		return nil, err
	}
	for i := range nodes {
		h := HostStanding{Node: nodes[i].Name}
		if !openshift.NodeReady(&nodes[i]) {
			h.Error = "not Ready, so no debug pod: on its console, ls " + StateDir + "/*/state and journalctl -u 'oc-recover-restore-*'"
		} else if rs, err := hostRestores(ctx, start, h.Node); err != nil {
			h.Error = err.Error()
		} else {
			h.Restores = rs
		}
		s.Hosts = append(s.Hosts, h)
	}
	return s, nil
}

// hostRestores lists the host's restore directories, newest last.
func hostRestores(ctx context.Context, start debugnode.StartFunc, node string) ([]HostRestoreAt, error) {
	r, err := start(ctx, node)
	if err != nil {
		return nil, err
	}
	defer func() { _ = r.Close(context.WithoutCancel(ctx)) }()
	script := `for d in ` + StateDir + `/*/; do
  d=${d%/}
  [ -d "$d/state" ] || continue
  echo "DIR $d"
  for f in "$d"/state/*; do [ -f "$f" ] && echo "MARK $(basename "$f") $(head -c 64 "$f" | head -n 1)"; done
  echo "UNIT $(systemctl is-active "oc-recover-restore-$(basename "$d")" 2>/dev/null || true)"
  [ ! -f "$d/run.log" ] || tail -n 5 "$d/run.log" | sed 's/^/LOG /'
done`
	var out, stderr bytes.Buffer
	code, err := r.Host(ctx, script, nil, &out, &stderr)
	if err != nil || code != 0 {
		return nil, hostErr("list "+StateDir, code, err, &stderr)
	}
	return parseHostRestores(&out), nil
}

func parseHostRestores(out io.Reader) []HostRestoreAt {
	var rs []HostRestoreAt
	data, _ := io.ReadAll(out)
	for _, line := range strings.Split(string(data), "\n") {
		kind, rest, _ := strings.Cut(line, " ")
		if kind == "DIR" {
			rs = append(rs, HostRestoreAt{Dir: rest, Markers: map[string]string{}})
			continue
		}
		if len(rs) == 0 {
			continue
		}
		cur := &rs[len(rs)-1]
		switch kind {
		case "MARK":
			name, at, _ := strings.Cut(rest, " ")
			cur.Markers[name] = at
		case "UNIT":
			cur.Unit = rest
		case "LOG":
			cur.Log = append(cur.Log, rest)
		}
	}
	sort.SliceStable(rs, func(i, j int) bool { return rs[i].Dir < rs[j].Dir })
	return rs
}

// MarkerNames are a directory's markers, in the order they were written.
func (h HostRestoreAt) MarkerNames() []string {
	var names []string
	for n := range h.Markers {
		names = append(names, n)
	}
	at := func(n string) time.Time {
		t, _ := time.Parse(time.RFC3339, h.Markers[n]) // not a time (an ID): first
		return t
	}
	sort.Slice(names, func(i, j int) bool {
		if ti, tj := at(names[i]), at(names[j]); !ti.Equal(tj) {
			return ti.Before(tj)
		}
		return names[i] < names[j]
	})
	return names
}
