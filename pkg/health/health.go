// Package health judges a cluster's readiness for disaster recovery: a
// catalogue of checks, each with an ID, a severity, the evidence it read
// and what fixes or diagnoses what it found. The checks are pure functions
// of what was read, so that each threshold is tested on its own; reading
// the cluster is the caller's.
package health

// Severity is a check's verdict.
type Severity string

const (
	// OK: nothing to do.
	OK Severity = "OK"
	// Warn: the cluster works, but a recovery would be harder or riskier
	// than it need be (oc recover health exits 3).
	Warn Severity = "WARN"
	// Fail: something is broken, or a check could not run (exit 1).
	Fail Severity = "FAIL"
)

var rank = map[Severity]int{OK: 0, Warn: 1, Fail: 2}

// Worse is the more severe of a and b.
func Worse(a, b Severity) Severity {
	if rank[b] > rank[a] {
		return b
	}
	return a
}

// Result is one check's finding.
type Result struct {
	ID       string   `json:"id"`
	Severity Severity `json:"severity"`
	Summary  string   `json:"summary"`
	Evidence []string `json:"evidence,omitempty"`
	// Fix says what fixes or diagnoses the finding: a command, or the
	// section of OpenShift's documentation to follow; empty when OK.
	Fix string `json:"fix,omitempty"`
}

// Report is every check's result and the verdict over them.
type Report struct {
	Verdict Severity `json:"verdict"`
	Checks  []Result `json:"checks"`
}

// NewReport is the report over results: its verdict is the worst of them
// (OK when there are none).
func NewReport(results []Result) Report {
	r := Report{Verdict: OK, Checks: results}
	for _, c := range results {
		r.Verdict = Worse(r.Verdict, c.Severity)
	}
	return r
}

// CouldNotRun is the result of a check that could not read what it
// judges: a FAIL, since a recovery cannot rest on what nobody could see.
func CouldNotRun(id string, err error) Result {
	return Result{ID: id, Severity: Fail, Summary: "could not run: " + err.Error()}
}
