package cmd

import (
	"encoding/csv"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Legacy plugins: kubectl 1.8 to 1.11 and oc 3.x (`oc plugin recover ...`)
// read a plugin.yaml descriptor (plugins.yaml in this repository) and run its
// `command` with only the positional arguments appended. The flags that the
// caller parsed reach the plugin as environment variables instead:
//
//	KUBECTL_PLUGINS_CALLER             path of the kubectl or oc binary
//	KUBECTL_PLUGINS_GLOBAL_FLAG_<NAME> each of the caller's global flags
//	KUBECTL_PLUGINS_LOCAL_FLAG_<NAME>  each flag the descriptor declares
//
// with <NAME> the flag's name upper-cased and "-" turned into "_", and the
// value the flag's (its default when not given).
const (
	// LegacyCallerEnv is set by a legacy plugin caller, and only by one.
	LegacyCallerEnv      = "KUBECTL_PLUGINS_CALLER"
	legacyGlobalFlagEnv  = "KUBECTL_PLUGINS_GLOBAL_FLAG_"
	legacyLocalFlagEnv   = "KUBECTL_PLUGINS_LOCAL_FLAG_"
	legacyPluginName     = "recover"
	legacyPluginCommand  = "plugin"
	legacyPluginFallback = "kubectl"
)

// legacyGlobalAliases maps global flags of oc 3.x that this plugin knows
// under another name: oc 3.x names the kubeconfig flag --config and klog's
// verbosity --loglevel.
var legacyGlobalAliases = map[string]string{
	"config":   "kubeconfig",
	"loglevel": "v",
}

// LegacyCommandName is the display name under a legacy caller, e.g.
// "oc plugin recover" when caller is /usr/bin/oc.
func LegacyCommandName(caller string) string {
	name := executableName(caller)
	if name == "" {
		name = legacyPluginFallback
	}
	return name + " " + legacyPluginCommand + " " + legacyPluginName
}

// LegacyPluginArgs returns the command line a legacy caller meant: args (the
// descriptor's command words after the binary, then the user's positional
// arguments) followed by a --name=value for every flag in environ that the
// user set to something other than its default and that the command args
// select knows. The caller's own flags that this plugin does not have
// (--match-server-version, ...) are dropped.
func LegacyPluginArgs(root *cobra.Command, args, environ []string) []string {
	target, _, err := root.Find(args)
	if err != nil || target == nil {
		target = root
	}
	var flags []string
	for _, kv := range sortedEnviron(environ) {
		name, value, _ := strings.Cut(kv, "=")
		var flag *pflag.Flag
		switch {
		case strings.HasPrefix(name, legacyGlobalFlagEnv):
			flagName := envToFlagName(strings.TrimPrefix(name, legacyGlobalFlagEnv))
			if alias, ok := legacyGlobalAliases[flagName]; ok {
				flagName = alias
			}
			flag = root.PersistentFlags().Lookup(flagName)
		case strings.HasPrefix(name, legacyLocalFlagEnv):
			flag = target.Flag(envToFlagName(strings.TrimPrefix(name, legacyLocalFlagEnv)))
		}
		if flag == nil || value == flag.DefValue || value == "" && flag.DefValue == "[]" {
			continue
		}
		flags = append(flags, flagArgs(flag, value)...)
	}
	if len(flags) == 0 {
		return args
	}
	out := make([]string, 0, len(args)+len(flags))
	// Flags go before a "--", after which everything is an argument.
	for i, arg := range args {
		if arg == "--" {
			out = append(out, args[:i]...)
			out = append(out, flags...)
			return append(out, args[i:]...)
		}
	}
	out = append(out, args...)
	return append(out, flags...)
}

// flagArgs turns a legacy flag value into command-line arguments. A caller
// passes list flags (--as-group) in pflag's form, "[a,b]"; they become one
// argument per element.
func flagArgs(flag *pflag.Flag, value string) []string {
	if _, isList := flag.Value.(pflag.SliceValue); isList && strings.HasPrefix(value, "[") && strings.HasSuffix(value, "]") {
		inner := strings.TrimSuffix(strings.TrimPrefix(value, "["), "]")
		if inner == "" {
			return nil
		}
		elems, err := csv.NewReader(strings.NewReader(inner)).Read()
		if err == nil {
			args := make([]string, 0, len(elems))
			for _, e := range elems {
				args = append(args, "--"+flag.Name+"="+e)
			}
			return args
		}
	}
	return []string{"--" + flag.Name + "=" + value}
}

// envToFlagName undoes the callers' flag-to-variable mapping: "OUTPUT_DIR"
// names --output-dir. (The mapping loses the difference between "-" and
// "_"; no flag of this plugin has a "_".)
func envToFlagName(s string) string {
	return strings.ReplaceAll(strings.ToLower(s), "_", "-")
}

// sortedEnviron returns environ sorted, so the arguments come out in the same
// order every time.
func sortedEnviron(environ []string) []string {
	sorted := append([]string(nil), environ...)
	sort.Strings(sorted)
	return sorted
}
