package cmd

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/oc-recover/oc-recover/pkg/exitcode"
)

// Execute runs root with ctx (cancelled on SIGINT/SIGTERM by main, so commands
// can clean up), prints any error to root's error stream the way kubectl does,
// and returns the process exit code (see package exitcode).
func Execute(ctx context.Context, root *cobra.Command) int {
	var helpErr error
	failed, err := root.ExecuteContextC(withHelpError(ctx, &helpErr))
	if err == nil && helpErr != nil {
		// --help after an unknown command (see helpFunc)
		err = helpErr
	}
	if err == nil {
		return exitcode.CodeSuccess
	}
	code := exitcode.FromError(err)
	if exitcode.IsSilent(err) {
		return code
	}

	var about *commandError
	if errors.As(err, &about) {
		failed = about.command
	}

	errOut := root.ErrOrStderr()
	msg := err.Error()
	// kubectl's cmdutil.CheckErr convention: one "error: " prefix, even if
	// the message already brought its own.
	if !strings.HasPrefix(msg, "error: ") {
		msg = "error: " + msg
	}
	fmt.Fprintln(errOut, strings.TrimRight(msg, "\n"))
	if code == exitcode.CodeUsage && failed != nil {
		fmt.Fprintf(errOut, "See '%s -h' for help and examples.\n", failed.CommandPath())
	}
	return code
}
