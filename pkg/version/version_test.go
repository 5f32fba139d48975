package version

import (
	"runtime"
	"runtime/debug"
	"testing"
)

// The Makefile injects values into these exact variables; Get must report them.
func TestGetReportsLinkerInjectedValues(t *testing.T) {
	saved := [3]string{gitVersion, gitCommit, buildDate}
	t.Cleanup(func() { gitVersion, gitCommit, buildDate = saved[0], saved[1], saved[2] })

	gitVersion = "v4.16.2-3-gabcdef0"
	gitCommit = "abcdef0123456789abcdef0123456789abcdef01"
	buildDate = "2025-01-02T03:04:05Z"

	got := Get()
	if got.GitVersion != gitVersion || got.GitCommit != gitCommit || got.BuildDate != buildDate {
		t.Errorf("Get() = %+v, want the injected version, commit and date", got)
	}
	if got.GoVersion != runtime.Version() {
		t.Errorf("GoVersion = %q, want %q", got.GoVersion, runtime.Version())
	}
	if want := runtime.GOOS + "/" + runtime.GOARCH; got.Platform != want {
		t.Errorf("Platform = %q, want %q", got.Platform, want)
	}
}

func TestFillFromBuildInfo(t *testing.T) {
	defaults := Info{GitVersion: defaultGitVersion, GitCommit: defaultGitCommit, BuildDate: defaultBuildDate}
	goInstall := &debug.BuildInfo{
		Main: debug.Module{Path: "github.com/oc-recover/oc-recover", Version: "v1.2.3"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "1111111111111111111111111111111111111111"},
			{Key: "vcs.time", Value: "2025-06-07T08:09:10Z"},
		},
	}

	t.Run("fills defaults from go install metadata", func(t *testing.T) {
		got := fillFromBuildInfo(defaults, goInstall)
		want := Info{GitVersion: "v1.2.3", GitCommit: "1111111111111111111111111111111111111111", BuildDate: "2025-06-07T08:09:10Z"}
		if got != want {
			t.Errorf("got %+v, want %+v", got, want)
		}
	})

	t.Run("linker values win over build info", func(t *testing.T) {
		injected := Info{GitVersion: "v9.9.9", GitCommit: "2222", BuildDate: "2030-01-01T00:00:00Z"}
		if got := fillFromBuildInfo(injected, goInstall); got != injected {
			t.Errorf("got %+v, want the injected values unchanged %+v", got, injected)
		}
	})

	t.Run("local checkout keeps the dev version", func(t *testing.T) {
		local := &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}
		if got := fillFromBuildInfo(defaults, local); got.GitVersion != defaultGitVersion {
			t.Errorf("GitVersion = %q, want %q", got.GitVersion, defaultGitVersion)
		}
	})
}
