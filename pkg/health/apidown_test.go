package health

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"
)

// With no answer from the API, every selected check says so, and api.readyz
// says why and where to look; the fixes name the command as typed.
func TestAPIDownResults(t *testing.T) {
	c := Clients{REST: &rest.Config{Host: "https://api.box.example:6443"}}
	o := Options{Only: []string{"api.readyz", "etcd", "backup"}, Command: "kubectl recover", Now: time.Now()}
	out := apiDownResults(context.Background(), c, o, errors.New("dial tcp: connection refused"))
	if len(out) != 1+len(etcdIDs)+1 {
		t.Fatalf("%d results: %+v", len(out), out)
	}
	first := out[0]
	if first.ID != "api.readyz" || first.Severity != Fail || !strings.Contains(first.Summary, "https://api.box.example:6443 does not answer: dial tcp: connection refused") ||
		!strings.Contains(first.Fix, "`kubectl recover certs recover`") || !strings.Contains(first.Fix, "wrong clock") {
		t.Errorf("api.readyz: %+v", first)
	}
	for _, r := range out[1:] {
		if r.Severity != Fail || !strings.Contains(r.Summary, "not run: the API does not answer") {
			t.Errorf("%s: %+v", r.ID, r)
		}
	}
}
