package health

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	configclient "github.com/openshift/client-go/config/clientset/versioned"
	machineclient "github.com/openshift/client-go/machine/clientset/versioned"
	mcfgclient "github.com/openshift/client-go/machineconfiguration/clientset/versioned"
	operatorclient "github.com/openshift/client-go/operator/clientset/versioned"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/oc-recover/oc-recover/pkg/debugnode"
)

// Clients are what reading the cluster needs.
type Clients struct {
	Kube          kubernetes.Interface
	Config        configclient.Interface
	Operator      operatorclient.Interface
	Machine       machineclient.Interface
	MachineConfig mcfgclient.Interface
	REST          *rest.Config
}

// Options choose the checks and their thresholds.
type Options struct {
	// Only and Skip name areas ("etcd") or checks ("etcd.quota"); a check
	// runs when Only is empty or names it or its area, and Skip names
	// neither.
	Only, Skip []string
	// BackupDir is where the local backups are (backup.local).
	BackupDir string
	// MaxBackupAge is how old the newest backup may be before it warns.
	MaxBackupAge time.Duration
	// Until is when certificates must still be valid: the end of a
	// planned shutdown; zero when none is planned.
	Until time.Time
	// Command is how the user runs the plugin ("oc recover", "kubectl
	// recover"): the fixes name commands that way.
	Command string
	Now     time.Time
	// Deep adds the host checks (area hosts), run through a debug pod on
	// each control-plane node that StartRunner starts; at most
	// HostParallel at once (DefaultHostParallel when 0).
	Deep         bool
	StartRunner  debugnode.StartFunc
	HostParallel int
}

// An area is a group of checks read together: each check's ID starts
// with its area's name, and the report lists areas in this order.
type area struct {
	name string
	ids  []string
	run  func(ctx context.Context, c *cluster) []Result
	// last areas run once the others are done: the host checks create
	// debug namespaces, which the leftovers check is not to count, and
	// start pods, which the others need not wait behind.
	last bool
}

var areas = []area{
	{"api", []string{"api.readyz", "api.livez", "api.instances", "api.apiservices"}, apiChecks, false},
	{"version", []string{"version"}, versionChecks, false},
	{"nodes", []string{"nodes.ready", "nodes.pressure"}, nodeChecks, false},
	{"co", []string{"co"}, operatorChecks, false},
	{"staticpods", []string{"staticpods.etcd", "staticpods.kubeapiserver", "staticpods.kubecontrollermanager", "staticpods.kubescheduler", "staticpods.overrides"}, staticPodChecks, false},
	{"etcd", []string{"etcd.members", "etcd.health", "etcd.status", "etcd.quota", "etcd.fragmentation", "etcd.alarms"}, etcdChecks, false},
	{"csr", []string{"csr.pending"}, csrChecks, false},
	{"certs", []string{"certs.apiserver", "certs.signers", "certs.unmanaged", "certs.kubeletsigner"}, certChecks, false},
	{"machines", []string{"machines", "machines.cpms"}, machineChecks, false},
	{"mcp", []string{"mcp"}, poolChecks, false},
	{"webhooks", []string{"webhooks"}, webhookChecks, false},
	{"alerts", []string{"alerts"}, alertChecks, false},
	{"backup", []string{"backup.local"}, backupChecks, false},
	{"leftovers", []string{"leftovers"}, leftoverChecks, false},
	{"hosts", hostIDs, hostChecks, true},
}

// Names are the areas and checks --only and --skip accept.
func Names() []string {
	var out []string
	for _, a := range areas {
		out = append(out, a.name)
		for _, id := range a.ids {
			if id != a.name {
				out = append(out, id)
			}
		}
	}
	return out
}

// ValidateNames refuses a name that is neither an area nor a check.
func ValidateNames(names []string) error {
	known := map[string]bool{}
	for _, n := range Names() {
		known[n] = true
	}
	for _, n := range names {
		if !known[n] {
			return fmt.Errorf("%q is no area or check; they are: %s", n, strings.Join(Names(), ", "))
		}
	}
	return nil
}

// selected says whether check id of area runs.
func (o Options) selected(areaName, id string) bool {
	named := func(list []string) bool {
		for _, n := range list {
			if n == areaName || n == id {
				return true
			}
		}
		return false
	}
	if areaName == "hosts" && !o.Deep {
		return false // only --deep starts debug pods
	}
	return (len(o.Only) == 0 || named(o.Only)) && !named(o.Skip)
}

// Check reads the cluster and runs the selected checks. Areas are read in
// parallel; what several need (the nodes, the Machines, etcd/cluster, the
// cluster version) is read once. An API that does not answer its first
// request gets no other: the report says so at once. It writes nothing,
// but for the debug pods of Deep, which it removes.
func Check(ctx context.Context, clients Clients, o Options) Report {
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if o.MaxBackupAge == 0 {
		o.MaxBackupAge = DefaultMaxBackupAge
	}
	c := &cluster{Clients: clients, opts: o, readyz: probeReadyz(ctx, clients)}
	if c.readyz.err != nil {
		return NewReport(apiDownResults(ctx, clients, o, c.readyz.err))
	}
	results := make([][]Result, len(areas))
	for _, last := range []bool{false, true} {
		var wg sync.WaitGroup
		for i, a := range areas {
			wanted := false
			for _, id := range a.ids {
				wanted = wanted || o.selected(a.name, id)
			}
			if !wanted || a.last != last {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i] = a.run(ctx, c)
			}()
		}
		wg.Wait()
	}
	var out []Result
	for i, a := range areas {
		rs := results[i]
		sort.SliceStable(rs, func(x, y int) bool { return order(a, rs[x].ID) < order(a, rs[y].ID) })
		for _, r := range rs {
			if !o.selected(a.name, r.ID) {
				continue
			}
			r.Fix = renameCommand(r.Fix, o.Command)
			out = append(out, r)
		}
	}
	return NewReport(out)
}

// Area is the area a check belongs to (its ID up to the first dot).
func Area(id string) string {
	if i := strings.IndexByte(id, '.'); i >= 0 {
		return id[:i]
	}
	return id
}

func order(a area, id string) int {
	for i, known := range a.ids {
		if known == id {
			return i
		}
	}
	return len(a.ids)
}

// renameCommand has a fix name the plugin as the user runs it: the checks
// write "oc recover".
func renameCommand(fix, command string) string {
	if command == "" || command == "oc recover" {
		return fix
	}
	return strings.ReplaceAll(fix, "oc recover ", command+" ")
}
