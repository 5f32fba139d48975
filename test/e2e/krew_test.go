package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/oc-recover/oc-recover/test/internal/boxtest"
)

// The release archive of the one platform that runs here, packaged by the
// same program as `make release` (hack/release), once per test process.
const (
	releasePlatform = "linux/amd64"
	releaseArchive  = "oc-recover_linux_amd64.tar.gz"
	// releaseURL is where hack/release says the archives are published.
	releaseURL = "https://github.com/oc-recover/oc-recover/releases/download/" + e2eVersion
	// krewVersion is the krew that test/go.mod pins (tools.go).
	krewVersion = "v0.4.4"
)

var (
	releaseOnce sync.Once
	releaseDir  string
	releaseErr  error
	releaseLog  string
)

// releaseDist runs hack/release for linux/amd64 into a directory that lives as
// long as the test process, and returns that directory.
func releaseDist(t *testing.T) string {
	t.Helper()
	releaseOnce.Do(func() {
		releaseDir = filepath.Join(tools.BinDir, "dist")
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		// The archive holds the plugin these tests built: compiling it
		// again the release way (-trimpath) would double the build.
		cmd := exec.CommandContext(ctx, "go", "run", "./hack/release", "-version", e2eVersion,
			"-platforms", releasePlatform, "-dist", releaseDir, "-binary", filepath.Join(tools.BinDir, "kubectl-recover"))
		cmd.Dir = boxtest.RepoRoot()
		cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH=1795734081")
		out, err := cmd.CombinedOutput()
		releaseErr, releaseLog = err, string(out)
	})
	if releaseErr != nil {
		t.Fatalf("hack/release: %v\n%s", releaseErr, releaseLog)
	}
	return releaseDir
}

var (
	krewOnce sync.Once
	krewDir  string
	krewErr  error
)

// krewTools builds kubectl-krew and validate-krew-manifest (krewVersion) into
// test/.bin/krew-<version>/ and returns that directory.
func krewTools(t *testing.T) string {
	t.Helper()
	krewOnce.Do(func() {
		dir := filepath.Join(boxtest.RepoRoot(), "test", ".bin", "krew-"+krewVersion)
		for name, pkg := range map[string]string{
			"kubectl-krew":           "sigs.k8s.io/krew/cmd/krew",
			"validate-krew-manifest": "sigs.k8s.io/krew/cmd/validate-krew-manifest",
		} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(dir, name), pkg)
			if out, err := cmd.CombinedOutput(); err != nil {
				krewErr = &buildError{name, err, out}
				return
			}
		}
		krewDir = dir
	})
	if krewErr != nil {
		t.Fatal(krewErr)
	}
	return krewDir
}

type buildError struct {
	name string
	err  error
	out  []byte
}

func (e *buildError) Error() string {
	return "build " + e.name + ": " + e.err.Error() + "\n" + string(e.out)
}

// toolEnv is an environment for krew and kubectl: PATH holds exactly the
// given directories (not tools.BinDir, whose kubectl-recover would be found
// instead of krew's), a fresh HOME and the given variables.
func toolEnv(t *testing.T, path []string, vars ...string) []string {
	env := []string{"PATH=" + strings.Join(path, string(os.PathListSeparator)), "HOME=" + t.TempDir()}
	return append(env, vars...)
}

func runTool(t *testing.T, env []string, name string, args ...string) boxtest.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	r, err := boxtest.Capture(cmd)
	if err != nil {
		t.Fatalf("%s %v: %v", name, args, err)
	}
	return r
}

// kubectlDir holds only kubectl (linked from tools.BinDir), for a PATH
// without the plugin on it.
func kubectlDir(t *testing.T) string {
	dir := t.TempDir()
	if err := os.Symlink(filepath.Join(tools.BinDir, "kubectl"), filepath.Join(dir, "kubectl")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// The release archive unpacks with tar, as a user would, into both plugin
// names, the licence, the README and the legacy descriptor; the binaries run.
func TestReleaseArchiveUnpacksAndRuns(t *testing.T) {
	dist := releaseDist(t)
	sum, err := os.ReadFile(filepath.Join(dist, releaseArchive+".sha256"))
	if err != nil {
		t.Fatal(err)
	}
	check := exec.Command("sha256sum", "--check", "--strict", releaseArchive+".sha256")
	check.Dir = dist
	if out, err := check.CombinedOutput(); err != nil {
		t.Fatalf("sha256sum --check %s: %v\n%s", sum, err, out)
	}
	dir := t.TempDir()
	if out, err := exec.Command("tar", "-xzf", filepath.Join(dist, releaseArchive), "-C", dir).CombinedOutput(); err != nil {
		t.Fatalf("tar -xzf: %v\n%s", err, out)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if got, want := strings.Join(names, " "), "LICENSE README.md kubectl-recover oc-recover plugin.yaml"; got != want {
		t.Errorf("archive holds %s, want %s", got, want)
	}
	for _, name := range []string{"kubectl-recover", "oc-recover"} {
		r := runTool(t, toolEnv(t, nil), filepath.Join(dir, name), "version", "-o", "json")
		var v struct{ GitVersion, Platform string }
		if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &v) != nil || v.GitVersion != e2eVersion || v.Platform != releasePlatform {
			t.Errorf("%s version -o json: %+v\n%s", name, v, r)
		}
	}
	if info, err := os.Stat(filepath.Join(dist, releaseArchive)); err == nil {
		t.Logf("%s: %.1f MiB", releaseArchive, float64(info.Size())/(1<<20))
	}
}

// validate-krew-manifest accepts the checked-in .krew.yaml (all six
// platforms, placeholder sha256s: structure only) and, test-installing it with
// the real kubectl krew, the manifest `make release` renders.
func TestKrewManifestValidates(t *testing.T) {
	krewToolsDir := krewTools(t)
	dist := releaseDist(t)

	// validate-krew-manifest wants the file named after the plugin.
	template, err := os.ReadFile(filepath.Join(boxtest.RepoRoot(), ".krew.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	templateCopy := filepath.Join(t.TempDir(), "recover.yaml")
	if err := os.WriteFile(templateCopy, template, 0o644); err != nil {
		t.Fatal(err)
	}
	env := toolEnv(t, []string{krewToolsDir, kubectlDir(t)})
	if r := runTool(t, env, filepath.Join(krewToolsDir, "validate-krew-manifest"), "-manifest", templateCopy, "-skip-install"); r.Code != 0 {
		t.Fatalf("validate-krew-manifest .krew.yaml: %s", r)
	}

	// Its test installation downloads each platform's uri: serve the
	// archive from this machine and point the uri there.
	srv := httptest.NewServer(http.FileServer(http.Dir(dist)))
	defer srv.Close()
	rendered, err := os.ReadFile(filepath.Join(dist, "recover.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(rendered, []byte(releaseURL+"/"+releaseArchive)) {
		t.Fatalf("rendered manifest lacks the release URI %s:\n%s", releaseURL, rendered)
	}
	local := filepath.Join(t.TempDir(), "recover.yaml")
	if err := os.WriteFile(local, bytes.ReplaceAll(rendered, []byte(releaseURL), []byte(srv.URL)), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runTool(t, env, filepath.Join(krewToolsDir, "validate-krew-manifest"), "-manifest", local)
	if r.Code != 0 || !strings.Contains(r.Stdout+r.Stderr, "all 1 spec.platforms installed fine") {
		t.Fatalf("validate-krew-manifest (with installation): %s", r)
	}
}

// The way krew users install: `kubectl krew install --manifest --archive`
// into a fresh KREW_ROOT, $KREW_ROOT/bin on PATH; then kubectl finds the
// plugin, and `kubectl krew uninstall` removes it again.
func TestKrewInstallsThePlugin(t *testing.T) {
	krewToolsDir := krewTools(t)
	dist := releaseDist(t)
	krewRoot := t.TempDir()
	krewBin := filepath.Join(krewRoot, "bin")
	env := toolEnv(t, []string{kubectlDir(t), krewToolsDir, krewBin}, "KREW_ROOT="+krewRoot, "KUBECONFIG="+shared.Kubeconfig)

	r := runTool(t, env, "kubectl", "krew", "install",
		"--manifest="+filepath.Join(dist, "recover.yaml"), "--archive="+filepath.Join(dist, releaseArchive))
	if r.Code != 0 || !strings.Contains(r.Stderr, `Installed plugin: recover`) {
		t.Fatalf("kubectl krew install: %s", r)
	}
	if !strings.Contains(r.Stderr, "cluster-admin") {
		t.Errorf("krew did not show the manifest's caveats: %s", r)
	}
	link := filepath.Join(krewBin, "kubectl-recover")
	if target, err := os.Readlink(link); err != nil || !strings.HasPrefix(target, filepath.Join(krewRoot, "store", "recover", e2eVersion)) {
		t.Errorf("%s -> %q (%v), want a link into krew's store", link, target, err)
	}

	// `krew list` and `krew uninstall` want krew's plugin index, a git clone
	// of krew-index that `kubectl krew update` makes; an empty repository
	// stands in for it here, offline.
	index := filepath.Join(krewRoot, "index", "default")
	if out, err := exec.Command("git", "init", "--quiet", index).CombinedOutput(); err != nil {
		t.Fatalf("git init %s: %v\n%s", index, err, out)
	}
	r = runTool(t, env, "kubectl", "krew", "list")
	if r.Code != 0 || !strings.Contains(r.Stdout, "recover") {
		t.Errorf("kubectl krew list: %s", r)
	}
	r = runTool(t, env, "kubectl", "plugin", "list")
	if r.Code != 0 || !strings.Contains(r.Stdout, link) {
		t.Errorf("kubectl plugin list does not show %s: %s", link, r)
	}
	r = runTool(t, env, "kubectl", "recover", "version")
	if r.Code != 0 || !strings.Contains(r.Stdout, "Version:    "+e2eVersion+"\n") {
		t.Fatalf("kubectl recover version: %s", r)
	}
	r = runTool(t, env, "kubectl", "recover", "--help")
	if r.Code != 0 || !strings.Contains(r.Stdout, "kubectl recover [command]") {
		t.Errorf("kubectl recover --help: %s", r)
	}
	// The installed plugin reaches the cluster like any kubectl plugin.
	r = runTool(t, env, "kubectl", "recover", "member", "status", "-o", "json")
	if r.Code != 0 || !strings.Contains(r.Stdout, `"verdict"`) {
		t.Errorf("kubectl recover member status -o json: %s", r)
	}

	r = runTool(t, env, "kubectl", "krew", "uninstall", "recover")
	if r.Code != 0 {
		t.Fatalf("kubectl krew uninstall: %s", r)
	}
	if _, err := os.Lstat(link); !os.IsNotExist(err) {
		t.Errorf("%s is still there after uninstall (%v)", link, err)
	}
}

// Legacy callers (kubectl 1.8-1.11, oc 3.x) cannot be built here; this test
// does what their plugin runner does with the descriptor from the archive
// unpacked into ~/.kube/plugins/recover/: run the tree node's command, split
// on spaces, in the plugin's directory, with the positional arguments and
// the flags in KUBECTL_PLUGINS_* variables.
func TestLegacyPluginDescriptorRuns(t *testing.T) {
	dist := releaseDist(t)
	home := t.TempDir()
	pluginDir := filepath.Join(home, ".kube", "plugins", "recover")
	if err := os.MkdirAll(pluginDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("tar", "-xzf", filepath.Join(dist, releaseArchive), "-C", pluginDir).CombinedOutput(); err != nil {
		t.Fatalf("tar -xzf: %v\n%s", err, out)
	}
	data, err := os.ReadFile(filepath.Join(pluginDir, "plugin.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	type node struct {
		Name    string `json:"name"`
		Command string `json:"command"`
		Tree    []node `json:"tree"`
	}
	var root node
	if err := yaml.Unmarshal(data, &root); err != nil {
		t.Fatal(err)
	}
	find := func(path ...string) string {
		n := root
	next:
		for _, name := range path {
			for _, child := range n.Tree {
				if child.Name == name {
					n = child
					continue next
				}
			}
			t.Fatalf("plugin.yaml has no %v", path)
		}
		return n.Command
	}
	legacyRun := func(command string, args []string, vars ...string) boxtest.Result {
		words := strings.Split(command, " ")
		cmd := exec.Command(words[0], append(words[1:], args...)...)
		cmd.Dir = pluginDir
		cmd.Env = append([]string{"PATH=/usr/bin:/bin", "HOME=" + home, "KUBECTL_PLUGINS_CALLER=/usr/bin/oc",
			"KUBECTL_PLUGINS_CURRENT_NAMESPACE=default", "KUBECTL_PLUGINS_DESCRIPTOR_NAME=recover",
			"KUBECTL_PLUGINS_GLOBAL_FLAG_CONFIG=" + shared.Kubeconfig, "KUBECTL_PLUGINS_GLOBAL_FLAG_LOGLEVEL=0",
			"KUBECTL_PLUGINS_GLOBAL_FLAG_MATCH_SERVER_VERSION=false",
			"KUBECTL_PLUGINS_LOCAL_FLAG_YES=false", "KUBECTL_PLUGINS_LOCAL_FLAG_TIMEOUT=30m0s"}, vars...)
		r, err := boxtest.Capture(cmd)
		if err != nil {
			t.Fatalf("%s: %v", command, err)
		}
		return r
	}

	// `oc plugin recover member status -o json`, the kubeconfig from oc's --config
	r := legacyRun(find("member", "status"), nil, "KUBECTL_PLUGINS_LOCAL_FLAG_OUTPUT=json")
	if r.Code != 0 || !strings.Contains(r.Stdout, `"verdict"`) {
		t.Errorf("member status: %s", r)
	}
	// `oc plugin recover backup list <dir>`: a positional argument
	r = legacyRun(find("backup", "list"), []string{t.TempDir()}, "KUBECTL_PLUGINS_LOCAL_FLAG_OUTPUT=yaml")
	if r.Code != 0 || r.Stdout != "[]\n" {
		t.Errorf("backup list -o yaml of an empty directory: %s", r)
	}
	// help names the command the way the user typed it
	r = legacyRun(find("version"), []string{"--help"})
	if r.Code != 0 || !strings.Contains(r.Stdout, "oc plugin recover version") {
		t.Errorf("version --help: %s", r)
	}
}
