// Package version reports which build of oc-recover is running.
//
// Release builds set the variables below with the linker, see the Makefile:
//
//	go build -ldflags "-X github.com/oc-recover/oc-recover/pkg/version.gitVersion=v1.2.3 \
//	  -X github.com/oc-recover/oc-recover/pkg/version.gitCommit=$(git rev-parse HEAD) \
//	  -X github.com/oc-recover/oc-recover/pkg/version.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Defaults for builds without -ldflags. They must stay in sync with the
// variable initialisers below; Get uses them to tell "not injected" apart.
const (
	defaultGitVersion = "v0.0.0-dev"
	defaultGitCommit  = "unknown"
	defaultBuildDate  = "unknown"
)

// Set with -ldflags -X; they are variables (not constants) so the linker can.
var (
	gitVersion = defaultGitVersion
	gitCommit  = defaultGitCommit
	buildDate  = defaultBuildDate
)

// Info describes one build. Field names and JSON keys follow
// k8s.io/apimachinery/pkg/version.Info so the output looks familiar.
type Info struct {
	GitVersion string `json:"gitVersion"`
	GitCommit  string `json:"gitCommit"`
	BuildDate  string `json:"buildDate"`
	GoVersion  string `json:"goVersion"`
	Compiler   string `json:"compiler"`
	Platform   string `json:"platform"`
}

// Get returns the version of the running binary.
func Get() Info {
	info := Info{
		GitVersion: gitVersion,
		GitCommit:  gitCommit,
		BuildDate:  buildDate,
		GoVersion:  runtime.Version(),
		Compiler:   runtime.Compiler,
		Platform:   fmt.Sprintf("%s/%s", runtime.GOOS, runtime.GOARCH),
	}
	if buildInfo, ok := debug.ReadBuildInfo(); ok {
		info = fillFromBuildInfo(info, buildInfo)
	}
	return info
}

// fillFromBuildInfo fills the fields that -ldflags did not set from what the
// Go toolchain recorded in the binary. That keeps `go install
// github.com/oc-recover/oc-recover/cmd/oc-recover@v1.2.3` (which cannot pass
// our -ldflags) reporting v1.2.3 and its commit instead of the dev defaults.
func fillFromBuildInfo(info Info, buildInfo *debug.BuildInfo) Info {
	if info.GitVersion == defaultGitVersion {
		// "(devel)" is what a build from a local checkout records.
		if v := buildInfo.Main.Version; v != "" && v != "(devel)" {
			info.GitVersion = v
		}
	}
	for _, setting := range buildInfo.Settings {
		switch {
		case setting.Key == "vcs.revision" && info.GitCommit == defaultGitCommit:
			info.GitCommit = setting.Value
		case setting.Key == "vcs.time" && info.BuildDate == defaultBuildDate:
			// The commit time, not the build time, but closer than "unknown".
			info.BuildDate = setting.Value
		}
	}
	return info
}
