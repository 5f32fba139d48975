package era

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	configv1 "github.com/openshift/api/config/v1"
	configfake "github.com/openshift/client-go/config/clientset/versioned/fake"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kubefake "k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"

	"github.com/oc-recover/oc-recover/pkg/exitcode"
)

// versionServer answers GET /version/openshift with body, as OpenShift 3.x
// does, or with 404 when body is "", as OpenShift 4 does.
func versionServer(t *testing.T, body string) rest.Interface {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/version/openshift" || body == "" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	client, err := rest.UnversionedRESTClientFor(&rest.Config{Host: srv.URL,
		ContentConfig: rest.ContentConfig{NegotiatedSerializer: scheme.Codecs.WithoutConversion()}})
	if err != nil {
		t.Fatal(err)
	}
	return client
}

func clusterVersion(desired string, completed ...string) *configv1.ClusterVersion {
	cv := &configv1.ClusterVersion{ObjectMeta: metav1.ObjectMeta{Name: "version"},
		Spec:   configv1.ClusterVersionSpec{ClusterID: "c0ffee"},
		Status: configv1.ClusterVersionStatus{Desired: configv1.Release{Version: desired}}}
	for _, v := range completed {
		cv.Status.History = append(cv.Status.History, configv1.UpdateHistory{State: configv1.CompletedUpdate, Version: v})
	}
	return cv
}

func pod(name string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "openshift-etcd"}}
}

type cluster struct {
	openshift3 string // /version/openshift body; "" ⇒ 404
	cv         *configv1.ClusterVersion
	pods       []string
}

func (c cluster) decide(t *testing.T) (*Release, error) {
	t.Helper()
	var kubeObjs []runtime.Object
	for _, p := range c.pods {
		kubeObjs = append(kubeObjs, pod(p))
	}
	var cfgObjs []runtime.Object
	if c.cv != nil {
		cfgObjs = append(cfgObjs, c.cv)
	}
	return RequireSupported(context.Background(), Clients{
		Kube:            kubefake.NewSimpleClientset(kubeObjs...),
		OpenShiftConfig: configfake.NewSimpleClientset(cfgObjs...),
		REST:            versionServer(t, c.openshift3),
	})
}

var etcd44 = []string{"etcd-master-0", "etcd-master-1", "etcd-master-2", "etcd-guard-master-0", "installer-3-master-0"}

func TestSupportedReleasesPass(t *testing.T) {
	for _, tc := range []struct {
		name, version string
		major, minor  int
		cv            *configv1.ClusterVersion
	}{
		{"4.4", "4.4.0", 4, 4, clusterVersion("4.4.0", "4.4.0")},
		{"4.14", "4.14.3", 4, 14, clusterVersion("4.14.3", "4.14.3")},
		{"4.21 (newer than this plugin knows)", "4.21.0", 4, 21, clusterVersion("4.21.0", "4.21.0")},
		{"5.0", "5.0.1", 5, 0, clusterVersion("5.0.1", "5.0.1")},
		{"a nightly", "4.22.0-0.nightly-2026-11-30-120000", 4, 22, clusterVersion("4.22.0-0.nightly-2026-11-30-120000", "4.22.0-0.nightly-2026-11-30-120000")},
		{"installation in progress: the desired version", "4.14.3", 4, 14, clusterVersion("4.14.3")},
		{"update in progress: the newest completed", "4.14.3", 4, 14, func() *configv1.ClusterVersion {
			cv := clusterVersion("4.15.0", "4.14.3")
			cv.Status.History = append([]configv1.UpdateHistory{{State: configv1.PartialUpdate, Version: "4.15.0"}}, cv.Status.History...)
			return cv
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rel, err := cluster{cv: tc.cv, pods: etcd44}.decide(t)
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			if rel.Version != tc.version || rel.Major != tc.major || rel.Minor != tc.minor || rel.String() != "OpenShift "+tc.version {
				t.Errorf("release = %+v", rel)
			}
		})
	}
}

func TestUnsupportedReleasesAreRefusedNamingTheRelease(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    cluster
		want []string
	}{
		{"3.11", cluster{openshift3: `{"major":"3","minor":"11+","gitVersion":"v3.11.0+d699176-406","gitCommit":"d699176","buildDate":"2019-08-13T19:31:48Z"}`},
			[]string{"this cluster runs OpenShift 3.11.0 (from /version/openshift)", "master-etcd-<node>", "oc-recover supports OpenShift 4.4 and later",
				`OpenShift Container Platform 3.11 documentation, Day Two Operations Guide: chapter 4 "Creating an environment-wide backup"`}},
		{"3.11 without a gitVersion", cluster{openshift3: `{"major":"3","minor":"11+"}`},
			[]string{"this cluster runs OpenShift 3.11 (from /version/openshift)"}},
		{"4.3 by version", cluster{cv: clusterVersion("4.3.40", "4.3.40"), pods: []string{"etcd-member-master-0"}},
			[]string{"this cluster runs OpenShift 4.3.40, whose etcd is not managed by the etcd operator (etcd-member-<node> pods)",
				"oc-recover supports OpenShift 4.4 and later",
				`follow the OpenShift Container Platform 4.3 documentation, Backup and restore: chapter 1 "Backing up etcd"`}},
		{"4.3 by version, whatever the pods", cluster{cv: clusterVersion("4.3.0", "4.3.0"), pods: etcd44},
			[]string{"OpenShift 4.3.0, whose etcd is not managed by the etcd operator"}},
		{"4.2", cluster{cv: clusterVersion("4.2.36", "4.2.36")},
			[]string{"OpenShift 4.2.36", "OpenShift Container Platform 4.2 documentation, Backup and restore"}},
		{"4.3 by its etcd-member pods", cluster{cv: clusterVersion("4.4.3", "4.4.3"), pods: []string{"etcd-member-master-0", "etcd-member-master-1"}},
			[]string{"this cluster reports OpenShift 4.4.3 but runs etcd in etcd-member-<node> pods (etcd-member-master-0 in openshift-etcd)",
				"OpenShift Container Platform 4.3 documentation, Backup and restore"}},
		{"no ClusterVersion", cluster{pods: etcd44},
			[]string{"no clusterversion/version", "not OpenShift 4", "oc-recover supports OpenShift 4.4 and later"}},
		{"a version that is no release number", cluster{cv: clusterVersion("latest", "latest"), pods: etcd44},
			[]string{`version "latest"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.c.decide(t)
			if !IsUnsupported(err) {
				t.Fatalf("err = %v, want a refusal", err)
			}
			if exitcode.FromError(err) != exitcode.CodeFailure {
				t.Errorf("exit code %d, want 1", exitcode.FromError(err))
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "refusing, nothing was done: ") || strings.Contains(msg, "seed") {
				t.Errorf("message: %s", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message lacks %q:\n%s", w, msg)
				}
			}
		})
	}
}

func TestAClusterVersionWithoutAVersionIsAnUnfinishedInstallation(t *testing.T) {
	_, err := cluster{cv: clusterVersion(""), pods: etcd44}.decide(t)
	if err != ErrNoVersion || IsUnsupported(err) {
		t.Fatalf("err = %v, want ErrNoVersion", err)
	}
	if !strings.Contains(err.Error(), "is the installation finished?") {
		t.Error(err)
	}
}

func TestAnUnreachableAPIDecidesNothing(t *testing.T) {
	cfg := &rest.Config{Host: "http://127.0.0.1:1", ContentConfig: rest.ContentConfig{NegotiatedSerializer: scheme.Codecs.WithoutConversion()}}
	restClient, err := rest.UnversionedRESTClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cvErr := configfake.NewSimpleClientset()
	cvErr.PrependReactor("get", "clusterversions", func(action k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("dial tcp 127.0.0.1:6443: connect: connection refused")
	})
	_, err = RequireSupported(context.Background(), Clients{Kube: kubefake.NewSimpleClientset(), OpenShiftConfig: cvErr, REST: restClient})
	if err == nil || IsUnsupported(err) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("err = %v, want a read error that is no refusal", err)
	}
}

func TestAUserWithoutClusterAdminIsToldSo(t *testing.T) {
	config := configfake.NewSimpleClientset(clusterVersion("4.14.3", "4.14.3"))
	kube := kubefake.NewSimpleClientset()
	kube.PrependReactor("list", "pods", func(action k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(corev1.Resource("pods"), "", errors.New("no RBAC policy matched"))
	})
	_, err := RequireSupported(context.Background(), Clients{Kube: kube, OpenShiftConfig: config, REST: versionServer(t, "")})
	if err == nil || IsUnsupported(err) || !strings.Contains(err.Error(), "forbidden") || !strings.Contains(err.Error(), "needs the cluster-admin role") {
		t.Fatalf("err = %v", err)
	}
}

// Refuse, the commands' first call: a refusal or a permission error stops
// the command; a read that fails, or ends at the check's deadline (etcd
// without quorum), decides nothing, and the command goes on to report the
// broken control plane in its own terms. (That CheckTimeout bounds a read
// that hangs is shown end to end: member replace without quorum, in
// TestMemberReplaceRefusals.)
func TestRefuseStopsOnlyOnWhatItCanTell(t *testing.T) {
	hung := configfake.NewSimpleClientset()
	hung.PrependReactor("get", "clusterversions", func(action k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, context.DeadlineExceeded
	})
	if err := Refuse(context.Background(), Clients{Kube: kubefake.NewSimpleClientset(), OpenShiftConfig: hung, REST: versionServer(t, "")}); err != nil {
		t.Errorf("a hung API: %v, want nothing decided", err)
	}
	failing := configfake.NewSimpleClientset()
	failing.PrependReactor("get", "clusterversions", func(action k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("dial tcp 127.0.0.1:6443: connect: connection refused")
	})
	if err := Refuse(context.Background(), Clients{Kube: kubefake.NewSimpleClientset(), OpenShiftConfig: failing, REST: versionServer(t, "")}); err != nil {
		t.Errorf("a failing API: %v, want nothing decided", err)
	}
	if err := Refuse(context.Background(), Clients{Kube: kubefake.NewSimpleClientset(), OpenShiftConfig: configfake.NewSimpleClientset(clusterVersion("4.3.40", "4.3.40")), REST: versionServer(t, "")}); !IsUnsupported(err) {
		t.Errorf("4.3: %v, want a refusal", err)
	}
	forbidden := kubefake.NewSimpleClientset()
	forbidden.PrependReactor("list", "pods", func(action k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(corev1.Resource("pods"), "", errors.New("no RBAC policy matched"))
	})
	if err := Refuse(context.Background(), Clients{Kube: forbidden, OpenShiftConfig: configfake.NewSimpleClientset(clusterVersion("4.14.3", "4.14.3")), REST: versionServer(t, "")}); err == nil || !strings.Contains(err.Error(), "cluster-admin") {
		t.Errorf("forbidden: %v, want the permission error", err)
	}
	if err := Refuse(context.Background(), Clients{Kube: kubefake.NewSimpleClientset(), OpenShiftConfig: configfake.NewSimpleClientset(clusterVersion("4.14.3", "4.14.3")), REST: versionServer(t, "")}); err != nil {
		t.Errorf("4.14: %v", err)
	}
}
