package certs_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/oc-recover/oc-recover/pkg/certs"
	"github.com/oc-recover/oc-recover/pkg/health"
)

var now = time.Date(2025, 6, 7, 8, 9, 10, 0, time.UTC)

func leaf(t *testing.T, notBefore, notAfter time.Time) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kube-apiserver-lb-signer"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: notBefore.Add(-time.Hour), NotAfter: notAfter.Add(time.Hour)}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "api.example.com"}, NotBefore: notBefore, NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func containsAll(t *testing.T, what string, lines []string, wants ...string) {
	t.Helper()
	text := strings.Join(lines, "\n")
	for _, w := range wants {
		if !strings.Contains(text, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, text)
		}
	}
	if strings.Contains(text, "seed") {
		t.Errorf("%s speaks of seeds:\n%s", what, text)
	}
}

// What the API's certificate tells: nothing answers, it expired (the
// cert-regeneration controller renews it), it is not valid yet (a clock),
// it does not verify; a valid one tells nothing.
func TestDiagnoseAPI(t *testing.T) {
	server := "https://api.example.com:6443"
	for _, tc := range []struct {
		name  string
		chain health.ServingChain
		want  []string
	}{
		{"nothing answers", health.ServingChain{Server: server, Err: errors.New("connection refused")},
			[]string{"Nothing answers TLS at " + server, "connection refused", "etcd has a quorum"}},
		{"expired", health.ServingChain{Server: server, Chain: []*x509.Certificate{leaf(t, now.Add(-31*24*time.Hour), now.Add(-3*24*time.Hour))}},
			[]string{`presents "api.example.com", issued by "kube-apiserver-lb-signer", which expired 3d ago`, "cert-regeneration controller renews it", "about ten minutes", "Check the clocks first", "2025-06-07T08:09:10Z"}},
		{"not yet valid", health.ServingChain{Server: server, Chain: []*x509.Certificate{leaf(t, now.Add(time.Hour), now.Add(30*24*time.Hour))}},
			[]string{"valid only from 2025-06-07T09:09:10Z", "a clock is wrong"}},
		{"foreign CA", health.ServingChain{Server: server, Chain: []*x509.Certificate{leaf(t, now.Add(-time.Hour), now.Add(time.Hour))}, VerifyErr: errors.New("x509: unknown authority")},
			[]string{"does not verify against the kubeconfig's CA", "unknown authority"}},
	} {
		containsAll(t, tc.name, []string{certs.DiagnoseAPI(tc.chain, now)}, tc.want...)
	}
	valid := health.ServingChain{Server: server, Chain: []*x509.Certificate{leaf(t, now.Add(-time.Hour), now.Add(time.Hour))}}
	if d := certs.DiagnoseAPI(valid, now); d != "" {
		t.Errorf("a valid certificate: %q", d)
	}
}

// The API never came back: console access, the clock check, the three
// containers' logs, the documentation, rendered with the API and nodes.
func TestHostProcedure(t *testing.T) {
	c := certs.Cluster{API: "https://api.example.com:6443", ControlPlane: []string{"master-0", "master-1"}, Now: now,
		Serving: &health.ServingChain{Server: "https://api.example.com:6443", Err: errors.New("connection refused")}}
	lines := certs.HostProcedure(c, "kubectl recover", 5*time.Minute, "dial tcp: connection refused")
	containsAll(t, "the host procedure", lines,
		"The API at https://api.example.com:6443 did not answer within 5m0s (last error: dial tcp: connection refused).",
		"console access is needed",
		"Check the clocks first", "2025-06-07T08:09:10Z", "chronyc tracking",
		"On master-0, master-1, as root, at the console:",
		"crictl logs --tail 50 $(crictl ps -a -q --name '^kube-apiserver$' | head -n 1)",
		"crictl logs --tail 50 $(crictl ps -a -q --name '^kube-apiserver-cert-regeneration-controller$' | head -n 1)",
		"crictl logs --tail 50 $(crictl ps -a -q --name '^etcd$' | head -n 1)",
		"Nothing answers TLS at https://api.example.com:6443",
		"run `kubectl recover certs recover` again",
		`OpenShift Container Platform 4.12 documentation, Backup and restore, 5.4.3 "Recovering from expired control plane certificates"`,
		`OpenShift Container Platform 4.3 documentation, Backup and restore, 3.4 "Recovering from expired control plane certificates"`)
	lines = certs.HostProcedure(certs.Cluster{Now: now}, "oc recover", time.Minute, "")
	containsAll(t, "the host procedure with nothing known", lines, "The API at <unknown>", "On every control-plane host, as root")
}

// OpenShift 4.3: the recovery API server procedure, with the cluster's
// release image and hosts; placeholders where they are unknown.
func TestProcedure43(t *testing.T) {
	image := "quay.io/openshift-release-dev/ocp-release@sha256:" + strings.Repeat("ab", 32)
	c := certs.Cluster{Release: "4.3.40", ReleaseImage: image, ControlPlane: []string{"master-0", "master-1", "master-2"}, Workers: []string{"worker-0"}, Now: now}
	lines := certs.Procedure43(c, "oc recover")
	containsAll(t, "the 4.3 procedure", lines,
		"This cluster runs OpenShift 4.3.40", "`oc recover certs recover` does not do it for you",
		`OpenShift Container Platform 4.3 documentation, Backup and restore, 3.4 "Recovering from expired control plane certificates"`,
		"Console access (or SSH) to the hosts is needed", "Check the clocks first",
		"On master-0, as root:", "  RELEASE_IMAGE="+image,
		"--image-for=cluster-kube-apiserver-operator", "recovery-apiserver create", "regenerate-certificates",
		`oc patch kubeapiserver cluster -p='{"spec":{"forceRedeploymentReason":"recovery-'"$( date --rfc-3339=ns )"'"}}' --type=merge`,
		"oc patch kubecontrollermanager cluster", "oc patch kubescheduler cluster",
		"recover-kubeconfig.sh > kubeconfig",
		"Copy kubeconfig to /etc/kubernetes/kubeconfig on master-1, master-2 too, and /etc/kubernetes/kubelet-ca.crt to master-1, master-2, worker-0.",
		"On every host (master-0, master-1, master-2, worker-0): touch /run/machine-config-daemon-force",
		"On every control-plane host (master-0, master-1, master-2), one after another: systemctl stop kubelet; rm -rf /var/lib/kubelet/pki /var/lib/kubelet/kubeconfig; systemctl start kubelet",
		"(oc get nodes; worker-0)", "node-bootstrapper CSR", "On master-0: podman run", "recovery-apiserver destroy", "up to ten minutes")
	lines = certs.Procedure43(certs.Cluster{Now: now}, "oc recover")
	containsAll(t, "the 4.3 procedure with nothing known", lines, "RELEASE_IMAGE=quay.io/openshift-release-dev/ocp-release:<version>-x86_64", "On <one control-plane host>, as root:")
}
