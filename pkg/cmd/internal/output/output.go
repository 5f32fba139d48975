// Package output is the one implementation of the -o flag that every
// read-only command takes (SPEC: "-o table|json|yaml"): validation and the
// structured formats. Each command prints its own table.
package output

import (
	"encoding/json"
	"fmt"
	"io"

	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/yaml"

	"github.com/oc-recover/oc-recover/pkg/exitcode"
)

// The formats -o accepts; Table is the default.
const (
	Table = "table"
	JSON  = "json"
	YAML  = "yaml"
)

// FlagUsage is the -o flag's help text.
const FlagUsage = "Output format: table, json or yaml."

// Validate refuses an unknown format as a usage error.
func Validate(format string) error {
	switch format {
	case Table, JSON, YAML:
		return nil
	}
	return exitcode.Usagef("--output must be table, json or yaml, got %q", format)
}

// Structured reports whether format is printed by Print rather than as a table.
func Structured(format string) bool { return format == JSON || format == YAML }

// HumanWriter is where a command writes what is meant for a person (its
// plan, progress lines, questions): stdout, or stderr when stdout carries a
// JSON or YAML report that a program reads.
func HumanWriter(format string, streams genericiooptions.IOStreams) io.Writer {
	if Structured(format) {
		return streams.ErrOut
	}
	return streams.Out
}

// OrDash is s, or "-" for an empty value in a table or a report line.
func OrDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// Print writes v as indented JSON or as YAML.
func Print(w io.Writer, format string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if format == YAML {
		if data, err = yaml.JSONToYAML(data); err != nil {
			return err
		}
		_, err = w.Write(data)
		return err
	}
	_, err = fmt.Fprintln(w, string(data))
	return err
}
