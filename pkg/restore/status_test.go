package restore

import (
	"reflect"
	"strings"
	"testing"
)

// A host's listing becomes its restore directories, each with its
// markers, its unit's state and its log; the markers come back in the
// order they were written (old-cluster-id holds an ID, not a time, and
// comes first).
func TestParseHostRestores(t *testing.T) {
	out := `DIR /var/lib/oc-recover/restore/prepared
MARK done 2026-12-03T10:00:09Z
MARK old-cluster-id 7364985129430128877
MARK data-moved 2026-12-03T10:00:05Z
UNIT inactive
LOG oc-recover restore x on master-1: done
DIR /var/lib/oc-recover/restore/20261203T095959Z-ab12
UNIT active
`
	rs := parseHostRestores(strings.NewReader(out))
	if len(rs) != 2 || rs[0].Dir != "/var/lib/oc-recover/restore/20261203T095959Z-ab12" || rs[0].Unit != "active" || len(rs[0].Markers) != 0 {
		t.Fatalf("restores %+v", rs)
	}
	p := rs[1]
	if p.Unit != "inactive" || !reflect.DeepEqual(p.Log, []string{"oc-recover restore x on master-1: done"}) {
		t.Errorf("prepared: %+v", p)
	}
	if got := p.MarkerNames(); !reflect.DeepEqual(got, []string{"old-cluster-id", "data-moved", "done"}) {
		t.Errorf("markers in order: %v", got)
	}
}
