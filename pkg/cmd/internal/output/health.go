package output

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/oc-recover/oc-recover/pkg/exitcode"
	"github.com/oc-recover/oc-recover/pkg/health"
)

// HealthReport prints a health report in format (a table, or JSON or
// YAML) and returns the exit its verdict calls for: the one way `health`
// and `certs` end.
func HealthReport(out io.Writer, format string, r health.Report) error {
	if Structured(format) {
		if err := Print(out, format, r); err != nil {
			return err
		}
	} else {
		HealthTable(out, r)
	}
	return VerdictError(r.Verdict)
}

// VerdictError is the exit a verdict calls for: none when OK, 3 when a
// check warns, 1 when one fails. It carries no message: the report has
// said everything.
func VerdictError(v health.Severity) error {
	switch v {
	case health.Fail:
		return &exitcode.Error{Code: exitcode.CodeFailure}
	case health.Warn:
		return exitcode.NeedsAttention(nil)
	}
	return nil
}

// HealthTable prints the report of `health` (and of `certs`): the checks
// grouped by area, the evidence and fix of each that is not OK under it,
// and the verdict.
func HealthTable(out io.Writer, r health.Report) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "AREA\tCHECK\tRESULT\tSUMMARY")
	area := ""
	counts := map[health.Severity]int{}
	for _, c := range r.Checks {
		counts[c.Severity]++
		shown := ""
		if a := health.Area(c.ID); a != area {
			area, shown = a, a
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", shown, c.ID, c.Severity, c.Summary)
		if c.Severity == health.OK {
			continue
		}
		for _, e := range c.Evidence {
			fmt.Fprintf(w, "\t\t\t  %s\n", e)
		}
		if c.Fix != "" {
			fmt.Fprintf(w, "\t\t\t  fix: %s\n", c.Fix)
		}
	}
	_ = w.Flush()
	fmt.Fprintf(out, "\nVerdict: %s (%d checks: %s)\n", r.Verdict, len(r.Checks), tally(counts))
}

func tally(counts map[health.Severity]int) string {
	var parts []string
	for _, s := range []health.Severity{health.OK, health.Warn, health.Fail} {
		parts = append(parts, fmt.Sprintf("%d %s", counts[s], s))
	}
	return strings.Join(parts, ", ")
}
