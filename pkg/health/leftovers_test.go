package health

import (
	"context"
	"strings"
	"testing"
	"time"

	operatorv1 "github.com/openshift/api/operator/v1"
	operatorfake "github.com/openshift/client-go/operator/clientset/versioned/fake"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/oc-recover/oc-recover/pkg/debugnode"
)

// A debug namespace being deleted is not left behind (a health --deep
// right after another sees the first one's going), unless it has been
// Terminating for long.
func TestLeftoversIgnoreNamespacesBeingDeleted(t *testing.T) {
	now := time.Now()
	ns := func(name string, deleting time.Duration) *corev1.Namespace {
		n := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{debugnode.ManagedByLabel: debugnode.ManagedByValue}}}
		if deleting > 0 {
			n.DeletionTimestamp = &metav1.Time{Time: now.Add(-deleting)}
			n.Finalizers = []string{"kubernetes"}
		}
		return n
	}
	kube := fake.NewClientset(ns("openshift-recover-going", 3*time.Second), ns("openshift-recover-stuck", time.Hour), ns("openshift-recover-left", 0))
	op := operatorfake.NewSimpleClientset(&operatorv1.Etcd{ObjectMeta: metav1.ObjectMeta{Name: "cluster"}})
	r := leftoverChecks(context.Background(), &cluster{Clients: Clients{Kube: kube, Operator: op}, opts: Options{Now: now}})[0]
	ev := strings.Join(r.Evidence, "\n")
	if r.Severity != Warn || strings.Contains(ev, "going") || !strings.Contains(ev, "openshift-recover-stuck") || !strings.Contains(ev, "openshift-recover-left") {
		t.Errorf("%+v", r)
	}
}
