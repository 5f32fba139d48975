package clients

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/rest"

	"github.com/oc-recover/oc-recover/pkg/exitcode"
)

const kubeconfig = `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://api.example.test:6443"}
users:
- name: u
  user: {token: t}
contexts:
- name: x
  context: {cluster: c, user: u}
current-context: x
`

func flagsFor(path string) *genericclioptions.ConfigFlags {
	f := genericclioptions.NewConfigFlags(false)
	f.KubeConfig = &path
	return f
}

func TestFromGetterRaisesTheRateLimitOnACopy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, []byte(kubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	f := flagsFor(path)
	set, err := FromGetter(f, 500, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if set.REST.QPS != 500 || set.REST.Burst != 1000 || set.REST.Host != "https://api.example.test:6443" {
		t.Errorf("config: qps %v burst %d host %s", set.REST.QPS, set.REST.Burst, set.REST.Host)
	}
	if set.Kube == nil || set.OpenShiftConfig == nil || set.Operator == nil || set.Machine == nil || set.Image == nil {
		t.Error("a client is missing")
	}
	// A getter that hands out one shared config keeps client-go's defaults.
	shared, err := f.ToRESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	qps, burst := shared.QPS, shared.Burst
	if _, err := FromGetter(sharedConfig{f, shared}, 500, 1000); err != nil {
		t.Fatal(err)
	}
	if shared.QPS != qps || shared.Burst != burst {
		t.Error("the rate limit was raised on the shared config, not a copy")
	}
	cfg := shared
	set, err = FromGetter(f, 0, 0)
	if err != nil || set.REST.QPS != cfg.QPS || set.REST.Burst != cfg.Burst {
		t.Errorf("0, 0 changed the rate limit: %v %v/%d", err, set.REST.QPS, set.REST.Burst)
	}
}

func TestFromGetterCallsAnUnloadableKubeconfigAUsageError(t *testing.T) {
	_, err := FromGetter(flagsFor(filepath.Join(t.TempDir(), "missing")), 0, 0)
	if err == nil || exitcode.FromError(err) != exitcode.CodeUsage || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("err = %v (exit %d), want a usage error naming the file", err, exitcode.FromError(err))
	}
}

// sharedConfig returns the same config on every call, as a caching getter would.
type sharedConfig struct {
	genericclioptions.RESTClientGetter
	cfg *rest.Config
}

func (g sharedConfig) ToRESTConfig() (*rest.Config, error) { return g.cfg, nil }
