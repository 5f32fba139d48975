// Package exitcode defines the process exit codes of oc-recover and an error
// type that carries one, so a command deep in the tree can decide the exit code
// while only main calls os.Exit.
//
// Codes (SPEC "Principles", point 5):
//
//	0 success / healthy
//	1 failure (any error that does not carry another code)
//	2 usage error (bad flag, bad arguments)
//	3 done, but degraded / needs attention
package exitcode

import (
	"errors"
	"fmt"
)

const (
	CodeSuccess        = 0
	CodeFailure        = 1
	CodeUsage          = 2
	CodeNeedsAttention = 3
)

// Error is an error that also chooses the process exit code.
//
// Err may be nil: that means the command has already told the user everything
// (for example printed a degraded health report) and only the exit code is left
// to deliver, so nothing more should be printed.
type Error struct {
	Code int
	Err  error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit code %d", e.Code)
	}
	return e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Usage marks err as a usage error (exit code 2): the user asked for something
// the command cannot parse or does not accept, and nothing was done.
func Usage(err error) error { return &Error{Code: CodeUsage, Err: err} }

// Usagef is Usage(fmt.Errorf(format, args...)).
func Usagef(format string, args ...any) error {
	return Usage(fmt.Errorf(format, args...))
}

// NeedsAttention marks err as "done, but degraded / needs attention" (exit
// code 3). Pass nil when the command has already printed what needs attention.
func NeedsAttention(err error) error { return &Error{Code: CodeNeedsAttention, Err: err} }

// NeedsAttentionf is NeedsAttention(fmt.Errorf(format, args...)).
func NeedsAttentionf(format string, args ...any) error {
	return NeedsAttention(fmt.Errorf(format, args...))
}

// FromError returns the exit code for err: 0 for nil, the code of the
// outermost *Error in err's chain, and 1 for any other error.
func FromError(err error) int {
	if err == nil {
		return CodeSuccess
	}
	var coded *Error
	if errors.As(err, &coded) {
		return coded.Code
	}
	return CodeFailure
}

// IsSilent reports whether err carries only an exit code and no message, i.e.
// the command has already reported everything it had to say. An *Error that
// was wrapped with more context is not silent: that context is worth printing.
func IsSilent(err error) bool {
	coded, ok := err.(*Error)
	return ok && coded.Err == nil
}
