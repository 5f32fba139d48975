package certs_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	configv1 "github.com/openshift/api/config/v1"
	operatorv1 "github.com/openshift/api/operator/v1"
	configfake "github.com/openshift/client-go/config/clientset/versioned/fake"
	operatorfake "github.com/openshift/client-go/operator/clientset/versioned/fake"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"

	"github.com/oc-recover/oc-recover/pkg/certs"
	"github.com/oc-recover/oc-recover/pkg/csr"
	"github.com/oc-recover/oc-recover/pkg/csr/csrtest"
	"github.com/oc-recover/oc-recover/pkg/era"
	"github.com/oc-recover/oc-recover/pkg/health"
	"github.com/oc-recover/oc-recover/pkg/power"
)

var master0 = csrtest.Host{Name: "master-0", IP: net.ParseIP("10.0.0.10")}

func controlPlane(h csrtest.Host, ready bool) *corev1.Node {
	n := h.Node(ready)
	delete(n.Labels, "node-role.kubernetes.io/worker")
	n.Labels["node-role.kubernetes.io/master"] = ""
	return &n
}

func cv(version string) *configv1.ClusterVersion {
	return &configv1.ClusterVersion{ObjectMeta: metav1.ObjectMeta{Name: "version"}, Status: configv1.ClusterVersionStatus{
		Desired: configv1.Release{Version: version, Image: "quay.io/openshift-release-dev/ocp-release@sha256:" + strings.Repeat("cd", 32)},
		History: []configv1.UpdateHistory{{State: configv1.CompletedUpdate, Version: version}}}}
}

func availableOperator(name string) *configv1.ClusterOperator {
	return &configv1.ClusterOperator{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: configv1.ClusterOperatorStatus{
		Conditions: []configv1.ClusterOperatorStatusCondition{{Type: configv1.OperatorAvailable, Status: configv1.ConditionTrue}, {Type: configv1.OperatorDegraded, Status: configv1.ConditionFalse}}}}
}

type fakes struct {
	kube     *fake.Clientset
	config   *configfake.Clientset
	operator *operatorfake.Clientset
}

func recoverer(f fakes, checks []health.Result) *certs.Recover {
	return &certs.Recover{
		Startup: &power.Startup{Approver: &csr.Approver{Kube: f.kube}, Operators: f.config,
			Era: era.Clients{Kube: f.kube, OpenShiftConfig: f.config}, Interval: time.Millisecond},
		Operator: f.operator, Kube: f.kube, Config: f.config, Command: "oc recover", Waited: time.Minute,
		Certs: func(context.Context) []health.Result { return checks },
	}
}

// A rotation fails for a few rounds; the node is Ready; then it clears:
// recovered, with the certificate checks that still fail and the
// pointers, and the conditions were waited for.
func TestRecoverWaitsForTheRotations(t *testing.T) {
	kas := &operatorv1.KubeAPIServer{ObjectMeta: metav1.ObjectMeta{Name: "cluster"}}
	kas.Status.Conditions = []operatorv1.OperatorCondition{
		{Type: "CertRotation_AggregatorProxyClientCert_Degraded", Status: operatorv1.ConditionTrue, Message: "expired"},
		{Type: "CertRotation_KubeAPIServerToKubeletClientCert_Degraded", Status: operatorv1.ConditionFalse},
		{Type: "NodeControllerDegraded", Status: operatorv1.ConditionTrue},
	}
	f := fakes{fake.NewClientset(controlPlane(master0, true)), configfake.NewClientset(cv("4.14.8"), availableOperator("kube-apiserver")), operatorfake.NewClientset(kas)}
	r := recoverer(f, []health.Result{{ID: "certs.apiserver", Severity: health.OK}, expiredUnmanaged, {ID: "certs.signers", Severity: health.Warn}})
	rounds := 0
	var phases []power.Phase
	r.Startup.OnState = func(st power.State, _ int) {
		phases = append(phases, st.Phase())
		if rounds++; rounds == 3 {
			kas.Status.Conditions[0].Status = operatorv1.ConditionFalse
			if _, err := f.operator.OperatorV1().KubeAPIServers().UpdateStatus(context.Background(), kas, metav1.UpdateOptions{}); err != nil {
				t.Error(err)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rep, err := r.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Phase != certs.Recovered || len(phases) != 4 || phases[0] != power.WaitConditions || phases[3] != power.Started {
		t.Errorf("phase %s after %v", rep.Phase, phases)
	}
	if len(rep.StillExpired) != 1 || rep.StillExpired[0].ID != "certs.unmanaged" || len(rep.Warnings) != 1 {
		t.Errorf("still expired %+v, warnings %+v", rep.StillExpired, rep.Warnings)
	}
	if code, _ := certs.Verdict(rep); code != 3 || !strings.Contains(strings.Join(rep.Pointers, "\n"), "ocp-certificates regenerate-leaf") {
		t.Errorf("exit %d, pointers %v", code, rep.Pointers)
	}
}

// The API never answers: after the time is up, the report holds the host
// procedure and the API's last error, and the exit is 1.
func TestRecoverWithoutTheAPI(t *testing.T) {
	f := fakes{fake.NewClientset(), configfake.NewClientset(), operatorfake.NewClientset()}
	down := func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("dial tcp 192.0.2.1:6443: connect: connection refused")
	}
	f.kube.PrependReactor("*", "*", down)
	f.config.PrependReactor("*", "*", down)
	r := recoverer(f, nil)
	r.REST = &rest.Config{Host: "https://127.0.0.1:1"}
	var diagnoses []string
	r.OnDiagnosis = func(d string) { diagnoses = append(diagnoses, d) }
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	rep, err := r.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := certs.Verdict(rep); code != 1 || rep.Phase != certs.WaitAPI || !strings.Contains(rep.APIError, "connection refused") {
		t.Errorf("exit %d, %+v", code, rep)
	}
	containsAll(t, "the report's procedure", rep.Procedure, "https://127.0.0.1:1 did not answer within 1m0s", "console access is needed", "kube-apiserver-cert-regeneration-controller")
	if len(diagnoses) != 1 || !strings.Contains(diagnoses[0], "Nothing answers TLS at https://127.0.0.1:1") {
		t.Errorf("diagnoses told: %q", diagnoses)
	}
}

// OpenShift 4.3: refused as every command refuses it, with the procedure
// rendered from the release image and the nodes; nothing approved.
func TestRecoverRefuses43WithTheProcedure(t *testing.T) {
	boot := csrtest.Bootstrap(master0).Object("csr-1", time.Now())
	f := fakes{fake.NewClientset(controlPlane(master0, false), &boot), configfake.NewClientset(cv("4.3.40")), operatorfake.NewClientset()}
	rep, err := recoverer(f, nil).Run(context.Background())
	if !era.IsUnsupported(err) || rep == nil || rep.Phase != certs.Refused {
		t.Fatalf("%v %+v", err, rep)
	}
	containsAll(t, "the 4.3 report", rep.Procedure, "OpenShift 4.3.40", "RELEASE_IMAGE=quay.io/openshift-release-dev/ocp-release@sha256:cdcd", "On master-0, as root:")
	if c, _ := f.kube.CertificatesV1().CertificateSigningRequests().Get(context.Background(), "csr-1", metav1.GetOptions{}); !csr.IsPending(c) {
		t.Errorf("a CSR approved on 4.3")
	}
}

func TestDegradedRotations(t *testing.T) {
	got := certs.DegradedRotations("kubeapiserver/cluster", []operatorv1.OperatorCondition{
		{Type: "CertRotation_Z_Degraded", Status: operatorv1.ConditionTrue, Message: "z"},
		{Type: "CertRotation_A_Degraded", Status: operatorv1.ConditionTrue},
		{Type: "CertRotation_B_Degraded", Status: operatorv1.ConditionFalse},
		{Type: "CertRotation_C_Degraded", Status: operatorv1.ConditionUnknown},
		{Type: "CertRotationTimeUpgradeable", Status: operatorv1.ConditionTrue},
		{Type: "StaticPodsDegraded", Status: operatorv1.ConditionTrue},
	})
	if len(got) != 2 || got[0].Type != "CertRotation_A_Degraded" || got[1].String() != "kubeapiserver/cluster CertRotation_Z_Degraded=True: z" {
		t.Errorf("%+v", got)
	}
}
