package health

import (
	"fmt"
	"time"
)

// roughly writes d as evidence reads best: whole days from two days on,
// whole hours from an hour, else minutes ("18d", "5h", "12m"). It rounds
// down, so a certificate "in 18d" has at least 18 days left.
func roughly(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%dd", int(d/(24*time.Hour)))
	case d >= time.Hour:
		return fmt.Sprintf("%dh", int(d/time.Hour))
	default:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	}
}

// day writes t as the date evidence names (UTC).
func day(t time.Time) string { return t.UTC().Format("2006-01-02") }
