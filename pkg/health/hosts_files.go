package health

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// KubeletCertWarn is how long before a kubelet certificate expires that
// it warns: the kubelet asks for a new one at about 70-90 % of its 30
// days, so a week left means its renewal has not been granted.
const KubeletCertWarn = 7 * 24 * time.Hour

// ParseEndDate reads `openssl x509 -enddate -noout`: "notAfter=Mar  5
// 12:00:00 2026 GMT".
func ParseEndDate(out string) (time.Time, error) {
	for _, line := range strings.Split(out, "\n") {
		v, ok := strings.CutPrefix(strings.TrimSpace(line), "notAfter=")
		if !ok {
			continue
		}
		// openssl pads the day to two places; strings.Fields folds it.
		t, err := time.Parse("Jan 2 15:04:05 2006 MST", strings.Join(strings.Fields(v), " "))
		if err != nil {
			return time.Time{}, fmt.Errorf("unexpected end date %q", v)
		}
		return t, nil
	}
	return time.Time{}, fmt.Errorf("no notAfter line in %q", abbreviate(strings.TrimSpace(out), 120))
}

// HostKubeletCerts judges the kubelet's current client and serving
// certificates on each control-plane host: an expired one fails (the
// kubelet cannot reach the API, or the API cannot reach it), one that
// expires within a week warns.
func HostKubeletCerts(reports []HostReport, now time.Time) Result {
	h := newHostResult("hosts.kubeletcerts")
	expired := false
	for _, rep := range reports {
		if h.unreached(rep) {
			continue
		}
		for _, c := range []struct{ section, name, path string }{
			{"cert-client", "client", KubeletClientPEM},
			{"cert-server", "serving", KubeletServerPEM},
		} {
			s, why := rep.section(c.section)
			if why != "" {
				h.unreadable(rep, s, c.name+" certificate "+why, Warn)
				continue
			}
			if s.Code != 0 {
				h.add(Warn, rep.Node, fmt.Sprintf("%s: %s", c.path, abbreviate(strings.TrimSpace(s.Output), 160)))
				continue
			}
			end, err := ParseEndDate(s.Output)
			if err != nil {
				h.add(Warn, rep.Node, c.path+": "+err.Error())
				continue
			}
			left := end.Sub(now)
			switch {
			case left <= 0:
				expired = true
				h.add(Fail, rep.Node, fmt.Sprintf("%s certificate expired on %s (%s ago)", c.name, day(end), roughly(-left)))
			case left < KubeletCertWarn:
				h.add(Warn, rep.Node, fmt.Sprintf("%s certificate expires on %s, in %s", c.name, day(end), roughly(left)))
			default:
				h.add(OK, rep.Node, fmt.Sprintf("%s certificate valid until %s", c.name, day(end)))
			}
		}
	}
	h.cleanup(reports)
	fix := "the kubelet renews its certificates through CSRs: `oc recover csr approve` approves those waiting"
	if expired {
		fix = "`oc recover csr approve --watch` approves the kubelets' new CSRs; a kubelet that cannot ask any more needs the host procedure of OpenShift Container Platform 4.5 documentation, Backup and restore, 5.4 \"Recovering from expired control plane certificates\""
	}
	return h.result("the kubelets' certificates on the control plane are valid for more than a week", "kubelet certificates expired or expiring: %s", fix)
}

// TmpMoved is something the documented manual recoveries move into /tmp,
// found there: its path and size.
type TmpMoved struct {
	Path  string
	Bytes int64
}

// ParseDU reads `du -sb` lines ("<bytes>\t<path>").
func ParseDU(out string) []TmpMoved {
	var found []TmpMoved
	for _, line := range strings.Split(out, "\n") {
		size, path, ok := strings.Cut(line, "\t")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(size), 10, 64)
		if err == nil && path != "" {
			found = append(found, TmpMoved{Path: path, Bytes: n})
		}
	}
	return found
}

// HostTmp reports what /tmp is on each control-plane host, and warns of
// what a manual recovery left there. The documented procedures move etcd's
// data directory, the static pod manifests and the kubelet's certificates
// into /tmp, which on RHCOS is a tmpfs: in memory, and emptied at the next
// reboot, when it may hold the only copy of the data it was moved to keep.
// A /tmp that is not a tmpfs is no fault: it is reported as it is.
func HostTmp(reports []HostReport) Result {
	h := newHostResult("hosts.tmp")
	for _, rep := range reports {
		if h.unreached(rep) {
			continue
		}
		s, why := rep.section("tmp")
		if why != "" {
			h.unreadable(rep, s, why, OK)
			continue
		}
		fs := strings.TrimSpace(s.Output)
		if s.Code != 0 || fs == "" {
			h.add(OK, rep.Node, "/tmp: stat -f: "+abbreviate(fs, 120))
			continue
		}
		kept := "on disk"
		if fs == "tmpfs" {
			kept = "in memory, lost at the next reboot"
		}
		moved, why := rep.section("tmp-moved")
		if why != "" {
			h.add(OK, rep.Node, fmt.Sprintf("/tmp is %s (%s)", fs, kept))
			continue
		}
		found := ParseDU(moved.Output)
		if len(found) == 0 {
			h.add(OK, rep.Node, fmt.Sprintf("/tmp is %s, and holds nothing a recovery moved there", fs))
			continue
		}
		var names []string
		for _, f := range found {
			names = append(names, fmt.Sprintf("%s (%s)", f.Path, bytesIEC(f.Bytes)))
		}
		h.add(Warn, rep.Node, fmt.Sprintf("/tmp is %s (%s) and holds what a recovery moved there: %s", fs, kept, strings.Join(names, ", ")))
	}
	h.cleanup(reports)
	return h.result("/tmp holds nothing a recovery moved there", "a recovery left data in /tmp: %s",
		"keep what is still needed under /var (e.g. /var/lib/etcd-backup), then remove it from /tmp; the restore procedure of OpenShift Container Platform 4.12 documentation, Backup and restore, 5.4.2.2 \"Restoring to a previous cluster state\" moves these there, and on RHCOS /tmp is a tmpfs")
}

// HostChecks judges every host report.
func HostChecks(reports []HostReport, now time.Time) []Result {
	sortReports(reports)
	return []Result{HostDisk(reports), HostClock(reports), HostKubeletCerts(reports, now), HostTmp(reports)}
}
