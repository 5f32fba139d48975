package box_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/oc-recover/oc-recover/test/internal/boxtest"
)

// chronyc tracking answers as chrony 4 does for the host's clock: in sync,
// then off by what SkewClock says, then in sync again.
func TestHostToolChronycTracksTheSimulatedClock(t *testing.T) {
	r := boxtest.HostRun(t, shared, "master-2", "chronyc tracking")
	if r.Code != 0 || !regexp.MustCompile(`(?m)^System time     : 0\.000012345 seconds slow of NTP time$`).MatchString(r.Stdout) ||
		!strings.Contains(r.Stdout, "Leap status     : Normal\n") || !strings.HasPrefix(r.Stdout, "Reference ID    : C0000201 (192.0.2.1)\n") {
		t.Fatalf("a synchronised host: %s", r)
	}
	restore, err := shared.SkewClock("master-2", 2500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	r = boxtest.HostRun(t, shared, "master-2", "chronyc -n tracking")
	if err := restore(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(r.Stdout, "System time     : 2.500000000 seconds fast of NTP time\n") {
		t.Errorf("a clock 2.5 s ahead: %s", r)
	}
	if r := boxtest.HostRun(t, shared, "master-2", "chronyc tracking | grep System"); !strings.Contains(r.Stdout, "slow") {
		t.Errorf("restored: %s", r)
	}
	if r := boxtest.HostRun(t, shared, "master-2", "chronyc sources"); r.Code == 0 {
		t.Errorf("a command the stand-in does not know succeeded: %s", r)
	}
}

// df reports the host's simulated disk in GNU df's format, whatever the
// test machine's disk holds; FillDisk makes it full and restore frees it.
func TestHostToolDFReportsTheSimulatedDisk(t *testing.T) {
	r := boxtest.HostRun(t, shared, "master-2", "df -B1 --output=file,size,used,avail,target /var /var/lib/etcd /etc")
	lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
	if r.Code != 0 || len(lines) != 4 || !regexp.MustCompile(`^File +1B-blocks +Used +Avail Mounted on$`).MatchString(lines[0]) ||
		!regexp.MustCompile(`^/var/lib/etcd +128849018880 +\d+ +\d+ /var$`).MatchString(lines[2]) || !strings.HasSuffix(lines[3], " /") {
		t.Fatalf("df: %s", r)
	}
	if r := boxtest.HostRun(t, shared, "master-2", "df -h /var"); !regexp.MustCompile(`(?m)^/dev/vda4 +120G +\d+G +\d+G +\d+% /var$`).MatchString(r.Stdout) {
		t.Errorf("df -h: %s", r)
	}
	if r := boxtest.HostRun(t, shared, "master-2", "df /nowhere"); r.Code != 1 || !strings.Contains(r.Stderr, "df: /nowhere: No such file or directory") {
		t.Errorf("df of a missing path: %s", r)
	}
	restore, err := shared.FillDisk("master-2", 5)
	if err != nil {
		t.Fatal(err)
	}
	r = boxtest.HostRun(t, shared, "master-2", "df --output=pcent,target /var/lib/etcd")
	if err := restore(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(r.Stdout, "\n 95% /var\n") {
		t.Errorf("a full disk: %s", r)
	}
}

// The kubelet's current certificates are on its host where the kubelet
// keeps them, for openssl to read: the serving one is the very certificate
// its API presents.
func TestHostKubeletCertificatesAreOnTheHost(t *testing.T) {
	n := shared.Node("master-1")
	r := boxtest.HostRun(t, shared, "master-1", "openssl x509 -enddate -noout -in /var/lib/kubelet/pki/kubelet-server-current.pem && "+
		"openssl x509 -subject -noout -in /var/lib/kubelet/pki/kubelet-client-current.pem && ls /var/lib/kubelet/pki")
	if r.Code != 0 || !regexp.MustCompile(`^notAfter=\w{3} [ \d]\d \d\d:\d\d:\d\d \d{4} GMT\n`).MatchString(r.Stdout) ||
		!strings.Contains(r.Stdout, "CN = system:node:master-1") || !regexp.MustCompile(`kubelet-client-\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d\.pem`).MatchString(r.Stdout) {
		t.Fatalf("kubelet certificates on the host: %s", r)
	}
	data, err := os.ReadFile(filepath.Join(n.Sandbox.Root, "var/lib/kubelet/pki/kubelet-server-current.pem"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	conn, err := tls.Dial("tcp", net.JoinHostPort(n.IP.String(), "10250"), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // compared, not trusted
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	presented := conn.ConnectionState().PeerCertificates[0]
	onHost, err := x509.ParseCertificate(block.Bytes)
	if err != nil || !presented.Equal(onHost) {
		t.Errorf("the host's kubelet-server-current.pem (%v) is not what the kubelet presents", err)
	}
}
