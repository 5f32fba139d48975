package options

import (
	"context"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/oc-recover/oc-recover/pkg/exitcode"
)

func parse(t *testing.T, args ...string) *GlobalOptions {
	t.Helper()
	o := NewGlobalOptions("oc recover")
	flags := pflag.NewFlagSet("test", pflag.ContinueOnError)
	o.AddFlags(flags)
	if err := flags.Parse(args); err != nil {
		t.Fatalf("parse %v: %v", args, err)
	}
	return o
}

func TestAddFlagsParsesIntoOptions(t *testing.T) {
	o := parse(t, "--yes", "--dry-run", "--timeout=5m", "--image=quay.io/example/tools:1")
	if !o.Yes || !o.DryRun || o.Timeout != 5*time.Minute || o.Image != "quay.io/example/tools:1" {
		t.Errorf("parsed options = %+v", o)
	}

	defaults := parse(t)
	if defaults.Yes || defaults.DryRun || defaults.Timeout != DefaultTimeout || defaults.Image != "" {
		t.Errorf("defaults = %+v", defaults)
	}
}

func TestValidateRejectsNegativeTimeout(t *testing.T) {
	o := parse(t, "--timeout=-1s")
	if code := exitcode.FromError(o.Validate()); code != exitcode.CodeUsage {
		t.Errorf("negative timeout: exit code %d, want %d", code, exitcode.CodeUsage)
	}
	if err := parse(t, "--timeout=0").Validate(); err != nil {
		t.Errorf("zero timeout (no limit) rejected: %v", err)
	}
}

func TestWithTimeout(t *testing.T) {
	ctx, cancel := parse(t, "--timeout=1h").WithTimeout(context.Background())
	defer cancel()
	deadline, ok := ctx.Deadline()
	if !ok || time.Until(deadline) > time.Hour || time.Until(deadline) < 59*time.Minute {
		t.Errorf("deadline = %v (set: %v), want about an hour from now", deadline, ok)
	}

	unbounded, cancelUnbounded := parse(t, "--timeout=0").WithTimeout(context.Background())
	defer cancelUnbounded()
	if _, ok := unbounded.Deadline(); ok {
		t.Error("--timeout=0 should mean no deadline")
	}
}
