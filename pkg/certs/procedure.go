package certs

import (
	"fmt"
	"strings"
	"time"

	"github.com/oc-recover/oc-recover/pkg/health"
)

// What oc-recover cannot do through the API, it prints for the
// administrator to do at the hosts' consoles, rendered with what it could
// read of the cluster. A kubelet that cannot reach the API runs no debug
// pod, so when the API does not come back (or on OpenShift 4.3, whose
// recovery is a host procedure) the consoles are the only way.

// Documentation the procedures follow, by title and section.
const (
	docsRecover   = `OpenShift Container Platform 4.12 documentation, Backup and restore, 5.4.3 "Recovering from expired control plane certificates"`
	docsRecover43 = `OpenShift Container Platform 4.3 documentation, Backup and restore, 3.4 "Recovering from expired control plane certificates"`
)

// Cluster is what a procedure is rendered with: what could be read of the
// cluster. Empty fields are shown as placeholders.
type Cluster struct {
	// API is the kubeconfig's server.
	API string
	// Release is the version clusterversion/version reports.
	Release string
	// ReleaseImage is clusterversion/version's status.desired.image.
	ReleaseImage string
	// ControlPlane and Workers are the nodes' names, when the API answered.
	ControlPlane, Workers []string
	// Serving is what the API server presented, when it was read.
	Serving *health.ServingChain
	// Now is this machine's clock, shown for the clock check.
	Now time.Time
}

func names(list []string, placeholder string) string {
	if len(list) == 0 {
		return placeholder
	}
	return strings.Join(list, ", ")
}

// clockCheck is the warning every procedure carries: a wrong clock gives
// the same errors as an expired certificate.
func clockCheck(now time.Time) string {
	return fmt.Sprintf("Check the clocks first: a machine whose clock is wrong sees valid certificates as expired or not yet valid, with the very same x509 errors. This machine's clock says %s; on each host compare `date -u` and `chronyc tracking`.",
		now.UTC().Format(time.RFC3339))
}

// HostProcedure is what to do when the API did not come back within
// waited: console access to the control-plane hosts, the clock check, the
// containers whose logs tell why, and what each finding means. command is
// the plugin's name as typed ("oc recover"). lastErr is the API's last
// error.
func HostProcedure(c Cluster, command string, waited time.Duration, lastErr string) []string {
	masters := names(c.ControlPlane, "every control-plane host")
	out := []string{
		fmt.Sprintf("The API at %s did not answer within %s (last error: %s).", orUnknown(c.API), waited, orUnknown(lastErr)),
		"What is left can only be done on the control-plane hosts, and a node whose kubelet cannot reach the API runs no debug pod: console access is needed (the cloud provider's serial console, the server's remote console, a keyboard), or SSH where it is set up.",
	}
	if c.Serving != nil {
		if d := DiagnoseAPI(*c.Serving, c.Now); d != "" {
			out = append(out, d)
		}
	}
	out = append(out, clockCheck(c.Now),
		fmt.Sprintf("On %s, as root, at the console:", masters),
		"  date -u; chronyc tracking",
		"  crictl ps -a --name 'etcd|kube-apiserver'",
		"  crictl logs --tail 50 $(crictl ps -a -q --name '^etcd$' | head -n 1)",
		"  crictl logs --tail 50 $(crictl ps -a -q --name '^kube-apiserver$' | head -n 1)",
		"  crictl logs --tail 50 $(crictl ps -a -q --name '^kube-apiserver-cert-regeneration-controller$' | head -n 1)",
		"  journalctl -u kubelet --since -1h | grep -E 'x509|certificate has expired|Unauthorized' | tail -n 20",
		"What the logs tell:",
		"  - etcd is not running, or logs that its certificates expired: the kube-apiserver cannot start without it, and etcd's certificates (3 years) are not regenerated while etcd is down; open a support case.",
		"  - the kube-apiserver exits, or logs x509 errors talking to etcd: the same.",
		"  - the kube-apiserver runs and the cert-regeneration controller logs that it regenerates certificates: the cluster is recovering by itself, usually within about ten minutes.",
		fmt.Sprintf("Once the API answers, run `%s certs recover` again: it approves the nodes' CSRs and waits for the rest (%s).", command, docsRecover),
		fmt.Sprintf("On OpenShift 4.3 and earlier the cluster does not regenerate its certificates by itself: follow %s; `%s certs recover` prints it rendered for the cluster once it can read the cluster's release.", docsRecover43, command),
	)
	return out
}

// Procedure43 is the recovery of OpenShift 4.3 (and earlier), a host
// procedure around the recovery API server (docsRecover43), rendered with
// the cluster's release image and nodes.
func Procedure43(c Cluster, command string) []string {
	image := c.ReleaseImage
	if image == "" {
		image = "quay.io/openshift-release-dev/ocp-release:<version>-x86_64"
	}
	first, others := "<one control-plane host>", "<the other control-plane hosts>"
	if len(c.ControlPlane) > 0 {
		first, others = c.ControlPlane[0], names(c.ControlPlane[1:], "(none)")
	}
	everyOther := names(append(append([]string{}, c.ControlPlane[min(1, len(c.ControlPlane)):]...), c.Workers...), "<every other host>")
	kao := `podman run -it --network=host -v /etc/kubernetes/:/etc/kubernetes/:Z --entrypoint=/usr/bin/cluster-kube-apiserver-operator "${KAO_IMAGE}"`
	release := "OpenShift " + orUnknown(c.Release)
	return []string{
		fmt.Sprintf("This cluster runs %s, which does not regenerate expired control-plane certificates by itself (that came with OpenShift 4.4.8): its recovery runs a recovery API server on a control-plane host. `%s certs recover` does not do it for you: follow %s, rendered here for this cluster. Console access (or SSH) to the hosts is needed.", release, command, docsRecover43),
		clockCheck(c.Now),
		fmt.Sprintf("On %s, as root:", first),
		"  RELEASE_IMAGE=" + image,
		`  KAO_IMAGE=$( oc adm release info --registry-config='/var/lib/kubelet/config.json' "${RELEASE_IMAGE}" --image-for=cluster-kube-apiserver-operator )`,
		`  podman pull --authfile=/var/lib/kubelet/config.json "${KAO_IMAGE}"`,
		"  " + kao + " recovery-apiserver create",
		"  export KUBECONFIG=<the admin.kubeconfig the previous command printed>",
		`  until oc get namespace kube-system 2>/dev/null 1>&2; do echo 'Waiting for recovery apiserver to come up.'; sleep 1; done`,
		"  " + kao + " regenerate-certificates",
		`  oc patch kubeapiserver cluster -p='{"spec":{"forceRedeploymentReason":"recovery-'"$( date --rfc-3339=ns )"'"}}' --type=merge`,
		`  oc patch kubecontrollermanager cluster -p='{"spec":{"forceRedeploymentReason":"recovery-'"$( date --rfc-3339=ns )"'"}}' --type=merge`,
		`  oc patch kubescheduler cluster -p='{"spec":{"forceRedeploymentReason":"recovery-'"$( date --rfc-3339=ns )"'"}}' --type=merge`,
		"  recover-kubeconfig.sh > kubeconfig",
		`  oc get configmap kube-apiserver-to-kubelet-client-ca -n openshift-kube-apiserver-operator --template='{{ index .data "ca-bundle.crt" }}' > /etc/kubernetes/kubelet-ca.crt`,
		fmt.Sprintf("Copy kubeconfig to /etc/kubernetes/kubeconfig on %s too, and /etc/kubernetes/kubelet-ca.crt to %s.", others, everyOther),
		fmt.Sprintf("On every host (%s): touch /run/machine-config-daemon-force", names(append(append([]string{}, c.ControlPlane...), c.Workers...), "every host")),
		fmt.Sprintf("On every control-plane host (%s), one after another: systemctl stop kubelet; rm -rf /var/lib/kubelet/pki /var/lib/kubelet/kubeconfig; systemctl start kubelet", names(c.ControlPlane, "every control-plane host")),
		fmt.Sprintf("On a worker that does not come back (oc get nodes; %s): the same.", names(c.Workers, "the workers")),
		"Approve every pending node-bootstrapper CSR after checking it: oc get csr; oc describe csr <name>; oc adm certificate approve <name>.",
		fmt.Sprintf("On %s: %s recovery-apiserver destroy", first, kao),
		"The control plane then restarts with the new certificates, which can take up to ten minutes.",
	}
}

// DiagnoseAPI says what the certificate the API presented tells of why the
// API does not answer, or "" when it tells nothing (it is valid and
// verifies): nothing answering TLS, an expired certificate (the
// cert-regeneration controller renews it), one not valid yet (a clock), or
// one the kubeconfig's CA does not verify.
func DiagnoseAPI(s health.ServingChain, now time.Time) string {
	if s.Err != nil {
		return fmt.Sprintf("Nothing answers TLS at %s (%v): the kube-apiserver is not running yet; it starts once etcd has a quorum.", s.Server, s.Err)
	}
	leaf := s.Chain[0]
	what := fmt.Sprintf("%s presents %q, issued by %q,", s.Server, leaf.Subject.CommonName, leaf.Issuer.CommonName)
	switch {
	case !now.Before(leaf.NotAfter):
		return fmt.Sprintf("%s which expired %s ago (%s): the kube-apiserver's cert-regeneration controller renews it, usually within about ten minutes of the kube-apiserver starting; until then a client that verifies it (as this one does) cannot connect. %s",
			what, roughly(now.Sub(leaf.NotAfter)), leaf.NotAfter.UTC().Format(time.RFC3339), clockCheck(now))
	case now.Before(leaf.NotBefore):
		return fmt.Sprintf("%s which is valid only from %s: a clock is wrong, this machine's or the host's. %s", what, leaf.NotBefore.UTC().Format(time.RFC3339), clockCheck(now))
	case s.VerifyErr != nil:
		return fmt.Sprintf("%s which does not verify against the kubeconfig's CA (%v): the serving certificate was re-issued by a new signer, or the kubeconfig is not this cluster's.", what, s.VerifyErr)
	}
	return ""
}

func orUnknown(s string) string {
	if s == "" {
		return "<unknown>"
	}
	return s
}

// roughly is a duration in its largest unit: 3d, 5h, 12m, 40s.
func roughly(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	case d >= 2*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	case d >= 2*time.Minute:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	}
	return fmt.Sprintf("%ds", int(d.Seconds()))
}
