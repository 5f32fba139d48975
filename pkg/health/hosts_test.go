package health

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

// hostOutput is the host script's output on an RHCOS 4.14 control-plane
// host, its sections as the given commands printed them.
func hostOutput(df, chrony, client, server, tmp, moved string) string {
	sec := func(name, out string, code int) string {
		s := hostMarker + " begin " + name + "\n"
		if out != "" {
			s += out + "\n"
		}
		return s + hostMarker + " end " + name + " " + itoa(code) + "\n"
	}
	return sec("disk", df, 0) + sec("clock", chrony, 0) + sec("cert-client", client, 0) + sec("cert-server", server, 0) +
		sec("tmp", tmp, 0) + sec("tmp-moved", moved, 0)
}

func itoa(n int) string { return strconv.Itoa(n) }

const (
	dfHealthy = `File                 1B-blocks        Used    Avail Mounted on
/var              128300593152 38490177946 89810415206 /var
/var/lib/etcd     128300593152 38490177946 89810415206 /var`
	dfOwnEtcdDisk = `File                 1B-blocks        Used    Avail Mounted on
/var              128300593152 109055504384 19245088768 /var
/var/lib/etcd      21474836480  20401094656  1073741824 /var/lib/etcd`
	chronyHealthy = `Reference ID    : C0A8010A (ntp1.example.com)
Stratum         : 3
Ref time (UTC)  : Tue Mar 05 10:11:12 2024
System time     : 0.000012345 seconds slow of NTP time
Last offset     : -0.000010117 seconds
RMS offset      : 0.000021310 seconds
Frequency       : 11.712 ppm fast
Residual freq   : -0.001 ppm
Skew            : 0.043 ppm
Root delay      : 0.001354511 seconds
Root dispersion : 0.000342271 seconds
Update interval : 64.4 seconds
Leap status     : Normal`
	endClient = "notAfter=Apr  4 10:00:00 2024 GMT"
	endServer = "notAfter=Mar 30 10:00:00 2024 GMT"
)

var hostsNow = time.Date(2024, 3, 5, 10, 0, 0, 0, time.UTC)

func healthyHost(node string) HostReport {
	return HostReport{Node: node, Sections: ParseHostOutput(hostOutput(dfHealthy, chronyHealthy, endClient, endServer, "tmpfs", ""))}
}

func TestParseHostOutput(t *testing.T) {
	out := hostOutput("a\n\nb", "", "x", "y", "tmpfs", "") + hostMarker + " absent extra chronyc\n" + hostMarker + " begin cut\npartial"
	s := ParseHostOutput(out)
	if s["disk"].Output != "a\n\nb" || !s["disk"].Ended || s["clock"].Output != "" || !s["clock"].Ended {
		t.Errorf("sections: %+v", s)
	}
	if !s["extra"].Absent || s["extra"].Command != "chronyc" {
		t.Errorf("absent: %+v", s["extra"])
	}
	if s["cut"].Ended || s["cut"].Output != "partial" {
		t.Errorf("cut off: %+v", s["cut"])
	}
}

func TestHostsHealthy(t *testing.T) {
	for _, r := range HostChecks([]HostReport{healthyHost("master-1"), healthyHost("master-0")}, hostsNow) {
		if r.Severity != OK || r.Fix != "" || !strings.HasPrefix(r.Evidence[0], "master-0: ") {
			t.Errorf("%s: %+v", r.ID, r)
		}
	}
	d := HostDisk([]HostReport{healthyHost("master-0")})
	if len(d.Evidence) != 1 || d.Evidence[0] != "master-0: /var: 69% free, 83.6 GiB of 119.5 GiB" {
		t.Errorf("one line per filesystem: %q", d.Evidence)
	}
}

func TestHostDisk(t *testing.T) {
	full := healthyHost("master-1")
	full.Sections = ParseHostOutput(hostOutput(dfOwnEtcdDisk, chronyHealthy, endClient, endServer, "tmpfs", ""))
	r := HostDisk([]HostReport{healthyHost("master-0"), full})
	ev := strings.Join(r.Evidence, "\n")
	if r.Severity != Fail || r.Summary != "little room on /var: master-1" || r.Fix == "" ||
		!strings.Contains(ev, "master-1: /var: 14% free") || !strings.Contains(ev, "master-1: /var/lib/etcd: 5% free, 1.0 GiB of 20.0 GiB") {
		t.Errorf("%+v", r)
	}
	warn := HostDisk([]HostReport{{Node: "m", Sections: ParseHostOutput(hostOutput(strings.Split(dfOwnEtcdDisk, "\n/var/lib")[0], "", "", "", "", ""))}})
	if warn.Severity != Warn {
		t.Errorf("14 %% free: %+v", warn)
	}
}

func TestHostClock(t *testing.T) {
	skewed := healthyHost("master-2")
	skewed.Sections["clock"] = HostSection{Ended: true, Output: strings.Replace(chronyHealthy, "0.000012345 seconds slow", "2.500000000 seconds fast", 1)}
	unsynced := healthyHost("master-1")
	unsynced.Sections["clock"] = HostSection{Ended: true, Output: strings.Replace(chronyHealthy, "Leap status     : Normal", "Leap status     : Not synchronised", 1)}
	r := HostClock([]HostReport{healthyHost("master-0"), unsynced, skewed})
	ev := strings.Join(r.Evidence, "\n")
	if r.Severity != Fail || !strings.Contains(ev, "master-2: 2.500000 s ahead of NTP time") || !strings.Contains(ev, "master-1: 0.000012 s behind NTP time (reference C0A8010A (ntp1.example.com), leap status Not synchronised): not synchronised") ||
		r.Summary != "clock off or unsynchronised: master-1, master-2" || r.Fix == "" {
		t.Errorf("%+v", r)
	}

	noChrony := healthyHost("master-0")
	noChrony.Sections["clock"] = HostSection{Absent: true, Ended: true, Command: "chronyc"}
	daemonDown := healthyHost("master-1")
	daemonDown.Sections["clock"] = HostSection{Ended: true, Code: 1, Output: "506 Cannot talk to daemon"}
	r = HostClock([]HostReport{noChrony, daemonDown})
	ev = strings.Join(r.Evidence, "\n")
	if r.Severity != Warn || !strings.Contains(ev, "master-0: no chronyc on the host: not checked") || !strings.Contains(ev, "master-1: `chronyc tracking` exited 1: 506 Cannot talk to daemon") {
		t.Errorf("%+v", r)
	}
}

func TestParseTracking(t *testing.T) {
	tr, err := ParseTracking(chronyHealthy)
	if err != nil || tr.Offset != -0.000012345 || tr.Leap != "Normal" || tr.Reference != "C0A8010A (ntp1.example.com)" {
		t.Errorf("%+v %v", tr, err)
	}
	for _, bad := range []string{"", "System time : soon", "506 Cannot talk to daemon"} {
		if _, err := ParseTracking(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestHostKubeletCerts(t *testing.T) {
	soon := healthyHost("master-1")
	soon.Sections["cert-server"] = HostSection{Ended: true, Output: "notAfter=Mar  8 10:00:00 2024 GMT"}
	gone := healthyHost("master-2")
	gone.Sections["cert-client"] = HostSection{Ended: true, Output: "notAfter=Feb 28 10:00:00 2024 GMT"}
	r := HostKubeletCerts([]HostReport{healthyHost("master-0"), soon, gone}, hostsNow)
	ev := strings.Join(r.Evidence, "\n")
	if r.Severity != Fail || !strings.Contains(ev, "master-1: serving certificate expires on 2024-03-08, in 3d") ||
		!strings.Contains(ev, "master-2: client certificate expired on 2024-02-28 (6d ago)") || !strings.Contains(r.Fix, "csr approve") {
		t.Errorf("%+v", r)
	}
	r = HostKubeletCerts([]HostReport{soon}, hostsNow)
	if r.Severity != Warn || !strings.Contains(r.Fix, "csr approve") {
		t.Errorf("%+v", r)
	}
	missing := healthyHost("master-0")
	missing.Sections["cert-client"] = HostSection{Ended: true, Code: 1, Output: "Could not open file or uri for loading certificate from /var/lib/kubelet/pki/kubelet-client-current.pem"}
	if r := HostKubeletCerts([]HostReport{missing}, hostsNow); r.Severity != Warn || !strings.Contains(r.Evidence[0], "Could not open") {
		t.Errorf("%+v", r)
	}
}

func TestParseEndDate(t *testing.T) {
	got, err := ParseEndDate(endClient)
	if err != nil || !got.Equal(time.Date(2024, 4, 4, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("%v %v", got, err)
	}
	if _, err := ParseEndDate("unable to load certificate"); err == nil {
		t.Error("no date parsed")
	}
}

func TestHostTmp(t *testing.T) {
	left := healthyHost("master-1")
	left.Sections["tmp-moved"] = HostSection{Ended: true, Output: "536870912\t/tmp/etcd\n4096\t/tmp/etcd-pod.yaml"}
	disk := healthyHost("master-2")
	disk.Sections["tmp"] = HostSection{Ended: true, Output: "xfs"}
	r := HostTmp([]HostReport{healthyHost("master-0"), left, disk})
	ev := strings.Join(r.Evidence, "\n")
	if r.Severity != Warn || !strings.Contains(ev, "master-1: /tmp is tmpfs (in memory, lost at the next reboot) and holds what a recovery moved there: /tmp/etcd (512.0 MiB), /tmp/etcd-pod.yaml (4.0 KiB)") ||
		!strings.Contains(ev, "master-2: /tmp is xfs, and holds nothing") || r.Summary != "a recovery left data in /tmp: master-1" || r.Fix == "" {
		t.Errorf("%+v", r)
	}
}

// A node that is not Ready is not tried: each check warns and names it
// (nodes.ready fails for it); one whose debug pod failed fails every
// check; a debug pod left behind warns.
func TestHostsUnreachable(t *testing.T) {
	notReady := HostReport{Node: "master-1", NotChecked: "node is not Ready (NodeStatusUnknown)"}
	failed := HostReport{Node: "master-2", Err: errors.New("debug pod did not start within 1m0s")}
	for _, r := range HostChecks([]HostReport{healthyHost("master-0"), notReady, failed}, hostsNow) {
		ev := strings.Join(r.Evidence, "\n")
		if r.Severity != Fail || !strings.Contains(ev, "master-1: ") || !strings.Contains(ev, "not checked: node is not Ready") ||
			!strings.Contains(ev, "master-2: ") || !strings.Contains(ev, "could not run: debug pod did not start") {
			t.Errorf("%s: %+v", r.ID, r)
		}
	}
	for _, r := range HostChecks([]HostReport{healthyHost("master-0"), notReady}, hostsNow) {
		if r.Severity != Warn {
			t.Errorf("%s: %+v", r.ID, r)
		}
	}
	left := healthyHost("master-0")
	left.CleanupErr = errors.New("delete namespace openshift-recover-x: timeout")
	for _, r := range HostChecks([]HostReport{left}, hostsNow) {
		if r.Severity != Warn || !strings.Contains(strings.Join(r.Evidence, "\n"), "debug pod not removed") || !strings.Contains(r.Fix, "oc recover cleanup") {
			t.Errorf("%s: %+v", r.ID, r)
		}
	}
}
