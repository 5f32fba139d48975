package member

import (
	"bytes"
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/oc-recover/oc-recover/pkg/etcd"
)

func secret(name string) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: etcd.Namespace, Name: name}}
}

// The member's three secrets are deleted, and only those: the other
// members' secrets stay. A second deletion (a resumed run) changes nothing
// and does not fail.
func TestDeleteSecretsDeletesTheMembersThreeSecrets(t *testing.T) {
	ctx := context.Background()
	objs := []runtime.Object{secret("etcd-peer-master-1"), secret("etcd-serving-master-1"), secret("etcd-serving-metrics-master-1"),
		secret("etcd-peer-master-0"), secret("etcd-serving-master-0")}
	f := newFakeCluster("", objs...)
	p := f.replacement(machineRecord(false))
	if gone, err := p.secretsGone(ctx); err != nil || gone {
		t.Fatalf("before: gone %v, %v; want the secrets present", gone, err)
	}
	var out bytes.Buffer
	if err := p.deleteSecrets(ctx, &out); err != nil {
		t.Fatal(err)
	}
	want := "  secret openshift-etcd/etcd-peer-master-1 deleted\n" +
		"  secret openshift-etcd/etcd-serving-master-1 deleted\n" +
		"  secret openshift-etcd/etcd-serving-metrics-master-1 deleted\n"
	if out.String() != want {
		t.Errorf("output:\n%s\nwant:\n%s", out.String(), want)
	}
	if gone, err := p.secretsGone(ctx); err != nil || !gone {
		t.Errorf("after: gone %v, %v; want gone", gone, err)
	}
	left, err := f.kube.CoreV1().Secrets(etcd.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(left.Items) != 2 {
		t.Errorf("%d secrets left, want the other member's 2", len(left.Items))
	}
	out.Reset()
	if err := p.deleteSecrets(ctx, &out); err != nil || out.Len() != 0 {
		t.Errorf("second deletion: %v, output %q; want nothing done", err, out.String())
	}
}

// One secret left is enough for the step to be still to do.
func TestSecretsGoneWhileOneIsLeft(t *testing.T) {
	p := newFakeCluster("", secret("etcd-serving-metrics-master-1")).replacement(machineRecord(false))
	if gone, err := p.secretsGone(context.Background()); err != nil || gone {
		t.Errorf("gone %v, %v; want not gone", gone, err)
	}
}
