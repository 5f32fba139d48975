package box_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	configv1 "github.com/openshift/api/config/v1"
	operatorv1 "github.com/openshift/api/operator/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/oc-recover/oc-recover/test/box"
	"github.com/oc-recover/oc-recover/test/internal/boxtest"
)

// secretCertificate is the leaf of a TLS secret.
func secretCertificate(t *testing.T, b *box.Box, namespace, name string) (*x509.Certificate, map[string]string) {
	t.Helper()
	s, err := b.Kube.CoreV1().Secrets(namespace).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(s.Data[corev1.TLSCertKey])
	if block == nil {
		t.Fatalf("%s/%s: no PEM certificate", namespace, name)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c, s.Annotations
}

// failingRotations are kubeapiservers/cluster's CertRotation_*_Degraded
// conditions that say True.
func failingRotations(t *testing.T, b *box.Box) []string {
	t.Helper()
	o, err := b.Operator.OperatorV1().KubeAPIServers().Get(context.Background(), "cluster", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range o.Status.Conditions {
		if strings.HasPrefix(c.Type, "CertRotation_") && c.Status == operatorv1.ConditionTrue {
			out = append(out, c.Type)
		}
	}
	sort.Strings(out)
	return out
}

func leaseRenewed(t *testing.T, b *box.Box, node string) time.Time {
	t.Helper()
	l, err := b.Kube.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(context.Background(), node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if l.Spec.LeaseDurationSeconds == nil || *l.Spec.LeaseDurationSeconds != 4 || l.Spec.RenewTime == nil {
		t.Fatalf("lease %s: %+v", node, l.Spec)
	}
	return l.Spec.RenewTime.Time
}

// "A cluster shut down past certificate expiry", as OpenShift 4.12
// documentation, Backup and restore, 5.4.3 describes it, on the box: the
// kubelets renew their leases while they run; after the shutdown and the
// power-on the nodes still say Ready (the node lifecycle controller waits
// its grace period), the leases are stale, the kube-apiserver operator
// reports its expired rotations Degraded (and its cluster operator with
// it), the cert-regeneration controller renews exactly those certificates
// after a while, and the user-provided one stays expired. Before 4.16 the
// etcd operator annotates its members' secrets with their node's UID only.
func TestBoxShutDownPastCertificateExpiry(t *testing.T) {
	t.Parallel()
	// The states between the power-on and the recovery (nodes still
	// Ready, rotations failing) must outlast a loaded machine's slowness:
	// seconds-long periods pass before a busy CI run can look.
	b := boxtest.StartBox(t, box.Options{Masters: 3, CertRegeneration: 40 * time.Second, NodeLeaseDuration: 4 * time.Second, NodeMonitorGracePeriod: 25 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	first := leaseRenewed(t, b, "master-0")
	err := box.WaitFor(ctx, 10*time.Second, "master-0's lease renewed", func(context.Context) (bool, string, error) {
		return leaseRenewed(t, b, "master-0").After(first), "", nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = box.WaitFor(ctx, 10*time.Second, "the etcd secrets' node UIDs", func(context.Context) (bool, string, error) {
		node, err := b.Kube.CoreV1().Nodes().Get(ctx, "master-1", metav1.GetOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		_, ann := secretCertificate(t, b, "openshift-etcd", "etcd-serving-master-1")
		return ann["etcd-operator.alpha.openshift.io/cert-secret-node-uid"] == string(node.UID) && ann[box.CertNotAfterAnnotation] == "", fmt.Sprint(ann), nil
	})
	if err != nil {
		t.Error(err)
	}
	if _, ann := secretCertificate(t, b, "openshift-kube-apiserver", "aggregator-client"); ann[box.CertNotAfterAnnotation] == "" || ann[box.AutoRegenerateAnnotation] != "" {
		t.Errorf("aggregator-client on 4.14: %v", ann)
	}

	if err := b.ShutDownPastCertificateExpiry(ctx, "openshift-config/custom-api-cert"); err != nil {
		t.Fatal(err)
	}
	if err := b.PowerOn(ctx); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"master-0", "master-1", "master-2"} {
		boxtest.AssertNodeReady(t, b, n, corev1.ConditionTrue) // stale: nothing noticed yet
	}
	want := "[CertRotation_AggregatorProxyClientCert_Degraded CertRotation_KubeAPIServerToKubeletClientCert_Degraded CertRotation_KubeControllerManagerClient_Degraded CertRotation_KubeSchedulerClient_Degraded CertRotation_LocalhostServing_Degraded]"
	if got := fmt.Sprint(failingRotations(t, b)); got != want {
		t.Errorf("rotations failing right after the power-on: %s, want %s", got, want)
	}
	co, err := b.Config.ConfigV1().ClusterOperators().Get(ctx, "kube-apiserver", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range co.Status.Conditions {
		if c.Type == configv1.OperatorDegraded && (c.Status != configv1.ConditionTrue || !strings.Contains(c.Message, "CertRotation_AggregatorProxyClientCert_Degraded: the certificate in secret openshift-kube-apiserver-operator/aggregator-client-signer expired")) {
			t.Errorf("kube-apiserver cluster operator: %+v", c)
		}
	}
	stale := leaseRenewed(t, b, "master-0")
	err = box.WaitFor(ctx, 90*time.Second, "the node lifecycle controller marking the nodes NotReady", func(context.Context) (bool, string, error) {
		n, err := b.Kube.CoreV1().Nodes().Get(ctx, "master-2", metav1.GetOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		return boxtest.NodeReady(n) == corev1.ConditionUnknown, string(boxtest.NodeReady(n)), nil
	})
	if err != nil {
		t.Error(err)
	}
	if !leaseRenewed(t, b, "master-0").Equal(stale) {
		t.Errorf("a kubelet without certificates renewed its lease")
	}

	err = box.WaitFor(ctx, 2*time.Minute, "the rotations regenerated", func(context.Context) (bool, string, error) {
		f := failingRotations(t, b)
		return len(f) == 0, fmt.Sprint(f), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, s := range [][2]string{{"openshift-kube-apiserver-operator", "aggregator-client-signer"}, {"openshift-kube-apiserver", "aggregator-client"},
		{"openshift-kube-apiserver", "kubelet-client"}, {"openshift-config-managed", "kube-scheduler-client-cert-key"}, {"openshift-kube-apiserver", "localhost-serving-cert-certkey"}} {
		c, ann := secretCertificate(t, b, s[0], s[1])
		if !c.NotAfter.After(now) || ann[box.CertNotAfterAnnotation] != c.NotAfter.UTC().Format(time.RFC3339) {
			t.Errorf("%s/%s not regenerated: expires %s, annotated %s", s[0], s[1], c.NotAfter, ann[box.CertNotAfterAnnotation])
		}
	}
	if c, _ := secretCertificate(t, b, "openshift-config", "custom-api-cert"); c.NotAfter.After(now) {
		t.Errorf("the user-provided certificate was renewed: %s", c.NotAfter)
	}
	if c, _ := secretCertificate(t, b, "openshift-kube-apiserver-operator", "localhost-serving-signer"); c.NotAfter.Before(now.Add(365 * 24 * time.Hour)) {
		t.Errorf("a 10-year signer was replaced: %s", c.NotAfter)
	}
}

// From 4.16 the etcd operator annotates its certificates as certrotation
// does; from 4.18 the kube-apiserver operator marks the ones regenerated
// after an offline expiry.
func TestBoxCertificateAnnotationsOf418(t *testing.T) {
	t.Parallel()
	b := boxtest.StartBox(t, box.Options{Masters: 1, Version: "4.18.3"})
	for _, name := range []string{"etcd-client", "etcd-peer-master-0", "etcd-serving-master-0", "etcd-serving-metrics-master-0"} {
		c, ann := secretCertificate(t, b, "openshift-etcd", name)
		if ann[box.CertNotAfterAnnotation] != c.NotAfter.UTC().Format(time.RFC3339) || ann["auth.openshift.io/certificate-issuer"] != "etcd-signer" ||
			ann["etcd-operator.alpha.openshift.io/cert-secret-node-uid"] != "" {
			t.Errorf("%s on 4.18: %v", name, ann)
		}
	}
	if _, ann := secretCertificate(t, b, "openshift-kube-apiserver", "aggregator-client"); !strings.HasPrefix(ann[box.AutoRegenerateAnnotation], "https://github.com/openshift/cluster-kube-apiserver-operator/pull/") {
		t.Errorf("aggregator-client on 4.18: %v", ann)
	}
	if _, ann := secretCertificate(t, b, "openshift-kube-apiserver-operator", "localhost-serving-signer"); ann[box.AutoRegenerateAnnotation] != "" {
		t.Errorf("localhost-serving-signer on 4.18 carries %q", ann[box.AutoRegenerateAnnotation])
	}
}
