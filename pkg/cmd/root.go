// Package cmd builds the oc-recover command tree.
//
// Each subcommand lives in its own package, pkg/cmd/<verb>, written in
// kubectl's style: an Options struct, NewCmd<Verb>(f, globals, streams), and
// the one lifecycle options.Command (Complete -> Validate -> Run), wired with
// options.RunE. A subcommand package gets
//
//   - f genericclioptions.RESTClientGetter (k8s.io/cli-runtime): clients built
//     from the kubeconfig flags (--kubeconfig, --context, --server, ...);
//   - globals *options.GlobalOptions: --yes, --dry-run, --timeout, --image and
//     the command name the user typed ("oc recover" / "kubectl recover");
//   - streams genericiooptions.IOStreams: where to read and write, so tests can
//     capture output;
//
// and must not import this package. A command reports failure by returning an
// error from RunE (never by calling os.Exit or cmdutil.CheckErr); errors from
// pkg/exitcode choose the exit code: exitcode.Usage (2), exitcode.NeedsAttention
// (3), anything else is 1. Execute prints the error once, as "error: <msg>".
//
// Help text is written with the placeholder CommandNamePlaceholder instead of
// "oc recover", e.g. in templates.Examples:
//
//	{{root}} backup --output-dir ./backups
//
// and NewRootCmd substitutes the name the user actually typed.
//
// Subcommands must not set PersistentPreRun(E): cobra would run theirs instead
// of the root's, which validates the global flags.
//
// Cobra validates MarkFlagRequired and MarkFlagsMutuallyExclusive itself and
// returns plain errors (exit code 1), so commands check those rules in Validate
// and return exitcode.Usage instead.
package cmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/klog/v2"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/oc-recover/oc-recover/pkg/cmd/backup"
	"github.com/oc-recover/oc-recover/pkg/cmd/certs"
	"github.com/oc-recover/oc-recover/pkg/cmd/cleanup"
	"github.com/oc-recover/oc-recover/pkg/cmd/csr"
	"github.com/oc-recover/oc-recover/pkg/cmd/health"
	"github.com/oc-recover/oc-recover/pkg/cmd/internal/options"
	"github.com/oc-recover/oc-recover/pkg/cmd/member"
	"github.com/oc-recover/oc-recover/pkg/cmd/power"
	"github.com/oc-recover/oc-recover/pkg/cmd/redeploy"
	"github.com/oc-recover/oc-recover/pkg/cmd/restore"
	"github.com/oc-recover/oc-recover/pkg/cmd/version"
	"github.com/oc-recover/oc-recover/pkg/exitcode"
)

// CommandNamePlaceholder stands for the command name ("oc recover" or
// "kubectl recover") in the Long and Example text of every command.
const CommandNamePlaceholder = "{{root}}"

var rootLong = templates.LongDesc(`
	Back up etcd and recover an OpenShift control plane.

	{{root}} automates the OpenShift etcd backup and disaster-recovery
	procedures. It talks only to the Kubernetes API and to privileged debug
	pods it creates on the nodes; it never needs SSH. Every step checks the
	cluster first and skips itself if already done, so re-running a command
	continues where it stopped.`)

var rootExample = templates.Examples(`
	# Show the version of this plugin
	{{root}} version

	# Use another kubeconfig and context
	{{root}} --kubeconfig ~/.kube/prod --context admin version`)

// NewRootCmd returns the root command, named after how the user invoked the
// plugin (see CommandName), with all subcommands. Started by a legacy plugin
// caller (kubectl 1.8-1.11, oc 3.x `oc plugin recover`), it is named
// "<caller> plugin recover" and reads its flags from the caller's environment
// (see LegacyPluginArgs).
func NewRootCmd(streams genericiooptions.IOStreams) *cobra.Command {
	if caller := os.Getenv(LegacyCallerEnv); caller != "" {
		root := newRootCmd(LegacyCommandName(caller), streams)
		root.SetArgs(LegacyPluginArgs(root, os.Args[1:], os.Environ()))
		return root
	}
	return newRootCmd(CommandName(os.Args[0], os.Getenv("_")), streams)
}

// NewRootCmdNamed returns the root command with the given display name
// ("oc recover", "kubectl recover"), whoever started the process: for
// programs that generate documentation from the command tree.
func NewRootCmdNamed(commandName string, streams genericiooptions.IOStreams) *cobra.Command {
	return newRootCmd(commandName, streams)
}

func newRootCmd(commandName string, streams genericiooptions.IOStreams) *cobra.Command {
	globals := options.NewGlobalOptions(commandName)

	root := &cobra.Command{
		// The executable's name, so `completion` scripts hook the right binary;
		// help text shows the display name instead.
		Use:     strings.ReplaceAll(commandName, " ", "-"),
		Short:   "Back up etcd and recover an OpenShift control plane",
		Long:    rootLong,
		Example: rootExample,
		Annotations: map[string]string{
			cobra.CommandDisplayNameAnnotation: commandName,
		},
		// Execute prints errors once, and usage errors with a pointer to -h
		// rather than the whole usage text.
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRunE: func(*cobra.Command, []string) error {
			return globals.Validate()
		},
	}
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)

	configFlags := genericclioptions.NewConfigFlags(true).
		// OpenShift serves far more API groups than plain Kubernetes, and the
		// default client-side rate limits stall discovery for seconds; these
		// are the limits kubectl itself uses.
		WithDiscoveryBurst(300).
		WithDiscoveryQPS(50)
	configFlags.AddFlags(root.PersistentFlags())
	globals.AddFlags(root.PersistentFlags())
	addKlogVerbosityFlag(root)

	addSubcommands(root, configFlags, globals, streams)
	// `completion bash|zsh|fish|powershell`, cobra's own. Cobra would add it
	// only when executing; added here it is part of the tree the generated
	// reference documents, and prepareCommandTree handles it like the rest.
	root.InitDefaultCompletionCmd()
	checkHelpTopics(root)

	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return exitcode.Usage(err)
	})
	root.SetHelpFunc(helpFunc(root.HelpFunc()))
	prepareCommandTree(root, commandName)
	return root
}

// addSubcommands adds one command per pkg/cmd/<verb> package. Commands that
// touch the cluster take all three, e.g. backup.NewCmdBackup(f, globals, streams).
func addSubcommands(root *cobra.Command, f genericclioptions.RESTClientGetter, globals *options.GlobalOptions, streams genericiooptions.IOStreams) {
	root.AddCommand(
		backup.NewCmdBackup(f, globals, streams),
		certs.NewCmdCerts(f, globals, streams),
		cleanup.NewCmdCleanup(f, globals, streams),
		csr.NewCmdCSR(f, globals, streams),
		health.NewCmdHealth(f, globals, streams),
		member.NewCmdMember(f, globals, streams),
		redeploy.NewCmdRedeploy(f, globals, streams),
		power.NewCmdShutdown(f, globals, streams),
		power.NewCmdStartup(f, globals, streams),
		restore.NewCmdRestore(f, globals, streams),
		version.NewCmdVersion(streams),
	)
}

// addKlogVerbosityFlag adds klog's -v to the persistent flags. Only -v: the
// other klog flags (log files, headers, ...) are noise for a CLI.
func addKlogVerbosityFlag(root *cobra.Command) {
	klogFlags := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(klogFlags)
	root.PersistentFlags().AddGoFlag(klogFlags.Lookup("v"))
}

// prepareCommandTree applies the conventions every command follows, so that
// subcommand packages need not remember them:
//   - CommandNamePlaceholder in Long and Example becomes the command name;
//   - argument errors exit with the usage code;
//   - a command group with no runnable code of its own prints its help when
//     called bare (cobra would do that for the root only);
//   - a command with subcommands rejects a word that is neither one of them
//     nor an argument it takes as an unknown command, with cobra's
//     suggestions, as a usage error (cobra would print help and exit 0, or
//     for the root report exit code 1 without its pointer to -h), with or
//     without --help (see helpFunc).
func prepareCommandTree(c *cobra.Command, commandName string) {
	c.Long = strings.ReplaceAll(c.Long, CommandNamePlaceholder, commandName)
	c.Example = strings.ReplaceAll(c.Example, CommandNamePlaceholder, commandName)

	if c.HasSubCommands() {
		group := !c.Runnable()
		if group {
			// Cobra never calls Args of a command that is not runnable, and
			// when the root's Args is nil it rejects unknown subcommands
			// itself with a plain error, before --help is looked at.
			// ArbitraryArgs turns that off; the Args below checks instead.
			if c.Args == nil {
				c.Args = cobra.ArbitraryArgs
			}
			c.RunE = runCommandGroup
		}
		if validateArgs := c.Args; validateArgs != nil {
			c.Args = func(c *cobra.Command, args []string) error {
				if len(args) > 0 && (group || validateArgs(c, args) != nil) {
					return unknownCommand(c, args[0])
				}
				return nil
			}
		}
	}
	if validateArgs := c.Args; validateArgs != nil {
		c.Args = func(c *cobra.Command, args []string) error {
			if err := validateArgs(c, args); err != nil {
				return exitcode.Usage(err)
			}
			return nil
		}
	}

	for _, child := range c.Commands() {
		prepareCommandTree(child, commandName)
	}
}

// runCommandGroup is the RunE of a command that only groups subcommands. Its
// Args has already rejected anything but no argument at all.
func runCommandGroup(c *cobra.Command, _ []string) error {
	return c.Help()
}

// unknownCommand is the usage error for a word that names no subcommand of c,
// worded as cobra and kubectl word it, with cobra's suggestions.
func unknownCommand(c *cobra.Command, name string) error {
	msg := fmt.Sprintf("unknown command %q for %q", name, c.CommandPath())
	if !c.DisableSuggestions {
		// Cobra applies this default only in its own, unexported, lookup.
		if c.SuggestionsMinimumDistance <= 0 {
			c.SuggestionsMinimumDistance = 2
		}
		if suggestions := c.SuggestionsFor(name); len(suggestions) > 0 {
			msg += "\n\nDid you mean this?\n\t" + strings.Join(suggestions, "\n\t")
		}
	}
	return exitcode.Usage(errors.New(msg))
}

// checkHelpTopics makes `help <command>` reject a command that does not
// exist as a mistyped command is rejected (see prepareCommandTree); cobra's
// help command would print the nearest command's help, or "Unknown help
// topic" and the usage, and exit 0.
func checkHelpTopics(root *cobra.Command) {
	root.InitDefaultHelpCmd()
	var help *cobra.Command
	for _, c := range root.Commands() {
		if c.Name() == "help" {
			help = c
		}
	}
	if help == nil || help.Run == nil {
		return
	}
	showHelp := help.Run
	help.Run = nil
	help.RunE = func(c *cobra.Command, args []string) error {
		target, rest, err := c.Root().Find(args)
		if err == nil && target != nil && target.HasSubCommands() && len(rest) > 0 {
			if err := target.ValidateArgs(rest); err != nil {
				return &commandError{command: target, err: err}
			}
		}
		showHelp(c, args)
		return nil
	}
}

// commandError is an error about command rather than the one that ran, so
// that Execute's pointer to -h names it.
type commandError struct {
	command *cobra.Command
	err     error
}

func (e *commandError) Error() string { return e.err.Error() }
func (e *commandError) Unwrap() error { return e.err }

// helpErrorKey is the context key under which Execute leaves helpFunc a place
// for the error it finds.
type helpErrorKey struct{}

// withHelpError returns ctx carrying slot, where helpFunc puts the error of a
// --help on an unknown command.
func withHelpError(ctx context.Context, slot *error) context.Context {
	return context.WithValue(ctx, helpErrorKey{}, slot)
}

// helpFunc wraps cobra's help function, which cobra calls for --help before
// it validates any argument: given --help after a word that names no
// subcommand (`restor --help`, `member stauts --help`), cobra would print the
// help of the nearest command and exit 0. Instead the help function checks
// the arguments the way the command would, and hands the error to Execute
// through the context (cobra's help function cannot return one), or when run
// outside Execute prints it.
func helpFunc(defaultHelp func(*cobra.Command, []string)) func(*cobra.Command, []string) {
	return func(c *cobra.Command, args []string) {
		// args is the whole command line; the flag set holds what the
		// command itself was given, once cobra has parsed its flags (and
		// nothing when the help comes from `help <command>` or a bare group).
		if positional := c.Flags().Args(); c.HasSubCommands() && len(positional) > 0 {
			if err := c.ValidateArgs(positional); err != nil {
				if ctx := c.Context(); ctx != nil {
					if slot, ok := ctx.Value(helpErrorKey{}).(*error); ok {
						*slot = err
						return
					}
				}
				fmt.Fprintln(c.ErrOrStderr(), "error: "+err.Error())
				return
			}
		}
		defaultHelp(c, args)
	}
}
