package health

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// The host checks (--deep) run one script per control-plane host, through
// a debug pod, and judge what it printed. Each command's output is a
// section between marker lines, with its exit code, so that one command's
// failure or absence is told apart from another's.

// hostMarker starts the script's own lines; no command prints it.
const hostMarker = "@@oc-recover"

// Kubelet certificate files, links to the current pair the kubelet
// rotated to (certificate and key in one PEM).
const (
	KubeletClientPEM = "/var/lib/kubelet/pki/kubelet-client-current.pem"
	KubeletServerPEM = "/var/lib/kubelet/pki/kubelet-server-current.pem"
)

// HostScript is what runs on every checked host (bash, as root, chroot
// /host). timeout bounds each command (chronyc waits for a chronyd that
// does not answer); df asks about /var, where etcd's data, the images and
// a restore's staging live, and /var/lib/etcd, its own mount on hosts with
// a dedicated etcd disk; stat -f asks the kernel what /tmp is (findmnt
// names only mount points: on a host whose /tmp is a directory of / it
// prints nothing); the last section lists what the documented manual
// recoveries move into /tmp and may have left there.
const HostScript = `set +e
m='` + hostMarker + `'
section() {
  name=$1; shift
  if ! command -v "$1" >/dev/null 2>&1; then echo "$m absent $name $1"; return; fi
  out=$(timeout 30 "$@" 2>&1); rc=$?
  echo "$m begin $name"
  [ -n "$out" ] && printf '%s\n' "$out"
  echo "$m end $name $rc"
}
section disk df -B1 --output=file,size,used,avail,target /var /var/lib/etcd
section clock chronyc tracking
section cert-client openssl x509 -enddate -noout -in ` + KubeletClientPEM + `
section cert-server openssl x509 -enddate -noout -in ` + KubeletServerPEM + `
section tmp stat -f -c %T /tmp
section tmp-moved sh -c 'for f in /tmp/etcd /tmp/member /tmp/*-pod.yaml /tmp/keepalived.yaml /tmp/kubelet-*.pem; do [ -e "$f" ] && du -sb -- "$f"; done; exit 0'
exit 0
`

// HostSection is one command's output on a host.
type HostSection struct {
	// Command names the program when it is absent from the host.
	Command string
	Output  string
	Code    int
	Absent  bool
	// Ended: its end line was read (the script was not cut off there).
	Ended bool
}

// HostReport is what the host script printed on one node, or why it did
// not run there.
type HostReport struct {
	Node string
	// NotChecked says why the node was not tried (it is not Ready: a debug
	// pod would never start there).
	NotChecked string
	// Err: the debug pod or the script could not run.
	Err      error
	Sections map[string]HostSection
	// CleanupErr: the debug pod and its namespace could not be removed.
	CleanupErr error
}

// ParseHostOutput reads the host script's sections.
func ParseHostOutput(out string) map[string]HostSection {
	sections := map[string]HostSection{}
	name := ""
	var body []string
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, hostMarker+" ") {
			if name != "" {
				body = append(body, line)
			}
			continue
		}
		f := strings.Fields(line)
		switch {
		case len(f) == 4 && f[1] == "absent":
			sections[f[2]] = HostSection{Command: f[3], Absent: true, Ended: true}
		case len(f) == 3 && f[1] == "begin":
			name, body = f[2], nil
			sections[name] = HostSection{Output: ""}
		case len(f) == 4 && f[1] == "end" && f[2] == name:
			code, _ := strconv.Atoi(f[3])
			sections[name] = HostSection{Output: strings.Join(body, "\n"), Code: code, Ended: true}
			name, body = "", nil
		}
	}
	if name != "" {
		sections[name] = HostSection{Output: strings.Join(body, "\n"), Code: -1}
	}
	return sections
}

// section is report's section, or why there is none to judge ("" when
// there is): the script stopped before it, or the host lacks the command.
func (r HostReport) section(name string) (HostSection, string) {
	s, ok := r.Sections[name]
	switch {
	case !ok || !s.Ended:
		return s, "the host script stopped before it"
	case s.Absent:
		return s, "no " + s.Command + " on the host: not checked"
	}
	return s, ""
}

// hostResult gathers a host check's findings per node into its result:
// each node's lines, the worst severity, the nodes with a problem, and
// whether any was the check's own finding (found) rather than a host that
// could not be read.
type hostResult struct {
	r               Result
	problems        []string
	found           bool
	unread, leftPod []string
}

func newHostResult(id string) *hostResult { return &hostResult{r: Result{ID: id, Severity: OK}} }

// add is a finding on node.
func (h *hostResult) add(sev Severity, node, line string) {
	h.note(sev, node, line)
	h.found = h.found || sev != OK
}

func (h *hostResult) note(sev Severity, node, line string) {
	h.r.Severity = Worse(h.r.Severity, sev)
	h.r.Evidence = append(h.r.Evidence, node+": "+line)
	if sev != OK {
		h.problems = append(h.problems, node)
	}
}

// unreached notes a node whose host was not read, and says so: one not
// tried because it is not Ready warns (nodes.ready judges it), one whose
// debug pod or script failed fails, since nothing was read.
func (h *hostResult) unreached(rep HostReport) bool {
	switch {
	case rep.NotChecked != "":
		h.note(Warn, rep.Node, "not checked: "+rep.NotChecked)
	case rep.Err != nil:
		h.note(Fail, rep.Node, "could not run: "+rep.Err.Error())
	default:
		return false
	}
	h.unread = append(h.unread, rep.Node)
	return true
}

// unreadable notes a node whose section s could not be judged, for why:
// a command the host lacks is absentSeverity; a script cut off fails.
func (h *hostResult) unreadable(rep HostReport, s HostSection, why string, absentSeverity Severity) {
	if s.Absent {
		h.add(absentSeverity, rep.Node, why)
		return
	}
	h.note(Fail, rep.Node, why)
	h.unread = append(h.unread, rep.Node)
}

// cleanup notes debug pods that were left behind.
func (h *hostResult) cleanup(reports []HostReport) {
	for _, rep := range reports {
		if rep.CleanupErr != nil {
			h.note(Warn, rep.Node, "debug pod not removed: "+rep.CleanupErr.Error())
			h.leftPod = append(h.leftPod, rep.Node)
		}
	}
}

// result is the check's result; fix is what the check's own findings ask
// for, else what a host that could not be read does.
func (h *hostResult) result(okSummary, badSummary, fix string) Result {
	if h.r.Severity == OK {
		h.r.Summary = okSummary
		return h.r
	}
	var fixes []string
	switch {
	case h.found:
		h.r.Summary = fmt.Sprintf(badSummary, strings.Join(dedupe(h.problems), ", "))
		fixes = append(fixes, fix)
	case len(h.unread) > 0:
		h.r.Summary = "hosts not read: " + strings.Join(dedupe(h.unread), ", ")
	default:
		h.r.Summary = "debug pods left behind: " + strings.Join(dedupe(h.leftPod), ", ")
	}
	if len(h.unread) > 0 {
		fixes = append(fixes, "`oc describe node <node>` says why a debug pod could not run there")
	}
	if len(h.leftPod) > 0 {
		fixes = append(fixes, "`oc recover cleanup` removes the debug pods left behind")
	}
	h.r.Fix = strings.Join(fixes, "; ")
	return h.r
}

func dedupe(names []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, n := range names {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}

// Free space on a control-plane host's /var, in percent of its size.
const (
	DiskFailFreePercent = 10
	DiskWarnFreePercent = 20
)

// DFLine is one filesystem of `df -B1 --output=file,size,used,avail,target`.
type DFLine struct {
	File, Target      string
	Size, Used, Avail int64
}

// ParseDF reads df's lines; the header and df's own complaints are
// skipped (a path that does not exist is simply not there).
func ParseDF(out string) []DFLine {
	var lines []DFLine
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		var n [3]int64
		ok := true
		for i := range n {
			v, err := strconv.ParseInt(f[1+i], 10, 64)
			ok = ok && err == nil
			n[i] = v
		}
		if ok {
			lines = append(lines, DFLine{File: f[0], Size: n[0], Used: n[1], Avail: n[2], Target: strings.Join(f[4:], " ")})
		}
	}
	return lines
}

// HostDisk judges the free space on each control-plane host's /var (and
// /var/lib/etcd when it is a filesystem of its own): etcd needs room to
// grow, compact and defragment, and a restore stages its backup there.
func HostDisk(reports []HostReport) Result {
	h := newHostResult("hosts.disk")
	for _, rep := range reports {
		if h.unreached(rep) {
			continue
		}
		s, why := rep.section("disk")
		if why != "" {
			h.unreadable(rep, s, why, Warn)
			continue
		}
		lines := ParseDF(s.Output)
		if len(lines) == 0 {
			h.add(Warn, rep.Node, "df gave nothing to judge: "+abbreviate(strings.TrimSpace(s.Output), 200))
			continue
		}
		seen := map[string]bool{}
		for _, l := range lines {
			if seen[l.Target] || l.Size <= 0 {
				continue
			}
			seen[l.Target] = true
			free := float64(l.Avail) * 100 / float64(l.Size)
			sev := OK
			switch {
			case free < DiskFailFreePercent:
				sev = Fail
			case free < DiskWarnFreePercent:
				sev = Warn
			}
			what := l.Target
			if l.File != l.Target {
				what = l.File + " (on " + l.Target + ")"
			}
			h.add(sev, rep.Node, fmt.Sprintf("%s: %.0f%% free, %s of %s", what, math.Floor(free), bytesIEC(l.Avail), bytesIEC(l.Size)))
		}
	}
	h.cleanup(reports)
	return h.result("every control-plane host has room on /var", "little room on /var: %s", fmt.Sprintf("free space on the host's /var (below %d %% it fails, below %d %% it warns): prune unused images (`crictl rmi --prune` on the host), vacuum the journal (`journalctl --vacuum-size=`), copy old backups and moved-aside data off the host; etcd needs room to defragment (OpenShift Container Platform 4.14 documentation, Scalability and performance, \"Recommended etcd practices\")", DiskFailFreePercent, DiskWarnFreePercent))
}

// bytesIEC writes n as "12.3 GiB".
func bytesIEC(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB"}
	v := float64(n)
	i := 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%d B", n)
	}
	return fmt.Sprintf("%.1f %s", v, units[i])
}

// ClockFailOffset is how far a host's clock may be from NTP time (chrony's
// own estimate) before it fails: etcd's peers warn from a second of skew,
// and certificates and leases are judged against the clock.
const ClockFailOffset = 1.0

// Tracking is what `chronyc tracking` says of the host's clock.
type Tracking struct {
	// Offset is how far the system clock is ahead of NTP time, in
	// seconds (negative: behind).
	Offset    float64
	Reference string
	Leap      string
}

// ParseTracking reads `chronyc tracking`: "System time : 0.000001234
// seconds slow of NTP time", "Reference ID : C0A80001 (ntp.example.com)",
// "Leap status : Normal".
func ParseTracking(out string) (Tracking, error) {
	var t Tracking
	found := false
	for _, line := range strings.Split(out, "\n") {
		key, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		value = strings.TrimSpace(value)
		switch strings.TrimSpace(key) {
		case "Reference ID":
			t.Reference = value
		case "Leap status":
			t.Leap = value
		case "System time":
			f := strings.Fields(value)
			if len(f) < 3 || f[1] != "seconds" || (f[2] != "fast" && f[2] != "slow") {
				return t, fmt.Errorf("unexpected System time %q", value)
			}
			v, err := strconv.ParseFloat(f[0], 64)
			if err != nil {
				return t, fmt.Errorf("unexpected System time %q", value)
			}
			if f[2] == "slow" {
				v = -v
			}
			t.Offset, found = v, true
		}
	}
	if !found {
		return t, fmt.Errorf("no System time line")
	}
	return t, nil
}

// HostClock judges each control-plane host's clock as chrony sees it.
func HostClock(reports []HostReport) Result {
	h := newHostResult("hosts.clock")
	for _, rep := range reports {
		if h.unreached(rep) {
			continue
		}
		s, why := rep.section("clock")
		if why != "" {
			h.unreadable(rep, s, why, Warn)
			continue
		}
		if s.Code != 0 {
			h.add(Warn, rep.Node, fmt.Sprintf("`chronyc tracking` exited %d: %s (chronyd not running?)", s.Code, abbreviate(strings.TrimSpace(s.Output), 160)))
			continue
		}
		t, err := ParseTracking(s.Output)
		if err != nil {
			h.add(Warn, rep.Node, "chronyc tracking: "+err.Error())
			continue
		}
		dir := "ahead of"
		if t.Offset < 0 {
			dir = "behind"
		}
		line := fmt.Sprintf("%.6f s %s NTP time (reference %s, leap status %s)", math.Abs(t.Offset), dir, t.Reference, t.Leap)
		switch {
		case math.Abs(t.Offset) > ClockFailOffset:
			h.add(Fail, rep.Node, line)
		case t.Leap == "Not synchronised":
			h.add(Warn, rep.Node, line+": not synchronised to any time source")
		default:
			h.add(OK, rep.Node, line)
		}
	}
	h.cleanup(reports)
	return h.result("every control-plane host's clock follows NTP", "clock off or unsynchronised: %s",
		"on the host, `chronyc sources -v` shows which time sources chronyd reaches; give the cluster reachable NTP servers (OpenShift Container Platform 4.14 documentation, Installation configuration, \"Configuring chrony time service\")")
}

// sortReports orders reports by node name, so evidence reads the same
// every run.
func sortReports(reports []HostReport) {
	sort.Slice(reports, func(i, j int) bool { return reports[i].Node < reports[j].Node })
}
