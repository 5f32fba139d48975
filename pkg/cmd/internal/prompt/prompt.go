// Package prompt asks the person at the terminal before a command changes
// the cluster (SPEC: "Plan first").
package prompt

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"
)

// IsTerminal reports whether stream (an input or output stream) is an
// interactive terminal.
func IsTerminal(stream any) bool {
	f, ok := stream.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// Confirm asks question and reads the answer: true only for "y" or "yes".
// Callers ask only on a terminal and unless --yes was given; elsewhere (CI,
// pipes) they go ahead, as the user who scripted it asked for.
func Confirm(in io.Reader, out io.Writer, question string) (bool, error) {
	fmt.Fprintf(out, "%s [y/N]: ", question)
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && line == "" {
		return false, fmt.Errorf("no answer: %w", err)
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true, nil
	}
	return false, nil
}

// Proceed is the confirmation of a mutating command: on a terminal, unless
// yes (--yes), it asks question and returns an error saying refused when
// the answer is not yes; elsewhere it lets the command go on.
func Proceed(in io.Reader, out io.Writer, yes bool, question, refused string) error {
	if yes || !IsTerminal(in) {
		return nil
	}
	ok, err := Confirm(in, out, question)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("not confirmed; %s", refused)
	}
	return nil
}
