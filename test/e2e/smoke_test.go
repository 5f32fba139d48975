package e2e

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/oc-recover/oc-recover/test/box"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestSmoke(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	b, err := box.Start(ctx, box.Options{Log: os.Stderr})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("started in %v, dir %s", time.Since(start), b.Dir)
	nodes, err := b.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes.Items {
		t.Logf("node %s %v", n.Name, n.Status.Addresses)
	}
	pods, _ := b.Kube.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	for _, p := range pods.Items {
		t.Logf("pod %s/%s %s", p.Namespace, p.Name, p.Status.Phase)
	}
	st := time.Now()
	b.Stop()
	t.Logf("stopped in %v", time.Since(st))
}
