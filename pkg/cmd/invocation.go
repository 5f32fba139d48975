package cmd

import (
	"path/filepath"
	"strings"
)

const (
	ocCommandName      = "oc recover"
	kubectlCommandName = "kubectl recover"
)

// CommandName returns how the user invoked the plugin, "oc recover" or
// "kubectl recover", for help text and messages.
//
// argv0 is os.Args[0]. shellCommand is the environment variable "_", which
// bash sets to the path of the command the user typed. Both oc and kubectl
// start a plugin with syscall.Exec and argv[0] set to the plugin's own path,
// and oc also runs plugins named kubectl-*, so argv0 alone cannot tell
// `oc recover` from `kubectl recover`; "_" can, when the shell set it.
//
// Anything unrecognised (go run, a renamed binary, a test binary) gives
// "oc recover": this is an OpenShift tool first.
func CommandName(argv0, shellCommand string) string {
	switch executableName(shellCommand) {
	case "oc":
		return ocCommandName
	case "kubectl":
		return kubectlCommandName
	}
	switch executableName(argv0) {
	case "oc-recover":
		return ocCommandName
	case "kubectl-recover":
		return kubectlCommandName
	}
	return ocCommandName
}

// executableName is the base name of path without a Windows ".exe" suffix.
func executableName(path string) string {
	if path == "" {
		return ""
	}
	return strings.TrimSuffix(filepath.Base(path), ".exe")
}
