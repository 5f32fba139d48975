package exitcode

import (
	"errors"
	"fmt"
	"testing"
)

func TestFromError(t *testing.T) {
	plain := errors.New("boom")
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"nil is success", nil, CodeSuccess},
		{"plain error is failure", plain, CodeFailure},
		{"usage", Usage(plain), CodeUsage},
		{"usagef", Usagef("bad %s", "flag"), CodeUsage},
		{"needs attention", NeedsAttention(plain), CodeNeedsAttention},
		{"needs attention without message", NeedsAttention(nil), CodeNeedsAttention},
		{"code survives wrapping", fmt.Errorf("member status: %w", NeedsAttention(plain)), CodeNeedsAttention},
		{"outermost code wins", Usage(NeedsAttention(plain)), CodeUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := FromError(tt.err); got != tt.want {
				t.Errorf("FromError(%v) = %d, want %d", tt.err, got, tt.want)
			}
		})
	}
}

func TestErrorKeepsMessageAndChain(t *testing.T) {
	inner := errors.New("quorum would be lost")
	err := NeedsAttention(inner)
	if err.Error() != inner.Error() {
		t.Errorf("Error() = %q, want the wrapped message %q", err.Error(), inner.Error())
	}
	if !errors.Is(err, inner) {
		t.Error("errors.Is does not find the wrapped error")
	}
	if got := Usagef("unknown output %q", "xml").Error(); got != `unknown output "xml"` {
		t.Errorf("Usagef message = %q", got)
	}
}

func TestIsSilent(t *testing.T) {
	if !IsSilent(NeedsAttention(nil)) {
		t.Error("NeedsAttention(nil) should be silent")
	}
	if IsSilent(NeedsAttention(errors.New("2 of 3 members healthy"))) {
		t.Error("an error with a message is not silent")
	}
	if IsSilent(fmt.Errorf("health: %w", NeedsAttention(nil))) {
		t.Error("a wrapped silent error gained context and is no longer silent")
	}
	if IsSilent(errors.New("boom")) {
		t.Error("a plain error is not silent")
	}
}
