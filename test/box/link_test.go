package box_test

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/oc-recover/oc-recover/test/internal/boxtest"
)

// SetLinkRate limits what an exec stream carries, in both directions, as a
// WAN link between the administrator and the cluster would; lifted, the
// same streams run at the loopback's speed again.
func TestLinkRateLimitsTheHostsStreams(t *testing.T) {
	const size, rate = 12 << 20, 4 << 20 // 3 s each way at the limit
	r := tools.Run(t, shared, "", "kubectl", "debug", "node/master-0", "--profile=sysadmin", "--image="+boxtest.DebugImage, "--", "sleep", "600")
	m := regexp.MustCompile(`debugging pod (\S+) `).FindStringSubmatch(r.Stdout + r.Stderr)
	if r.Code != 0 || m == nil {
		t.Fatalf("kubectl debug: %s", r)
	}
	pod := m[1]
	t.Cleanup(func() {
		shared.SetLinkRate(0)
		tools.Run(t, shared, "", "kubectl", "delete", "pod", pod, "--wait=false")
	})
	if r := tools.Run(t, shared, "", "kubectl", "wait", "--for=condition=Ready", "pod/"+pod, "--timeout=90s"); r.Code != 0 {
		t.Fatalf("debug pod %s not Ready: %s", pod, r)
	}
	payload := strings.Repeat("0123456789abcdef", size/16)
	timed := func(stdin string, args ...string) (time.Duration, string) {
		t0 := time.Now()
		r := tools.Run(t, shared, stdin, "kubectl", append([]string{"exec", "-i", pod, "--"}, args...)...)
		if r.Code != 0 {
			t.Fatalf("kubectl exec %v: %s", args, r)
		}
		return time.Since(t0), r.Stdout
	}
	down := func() time.Duration {
		d, out := timed("", "head", "-c", "12582912", "/dev/zero")
		if len(out) != size {
			t.Fatalf("read %d bytes from the host, want %d", len(out), size)
		}
		return d
	}
	up := func() time.Duration {
		d, out := timed(payload, "wc", "-c")
		if strings.TrimSpace(out) != "12582912" {
			t.Fatalf("the host counted %q bytes, want %d", out, size)
		}
		return d
	}

	shared.SetLinkRate(rate)
	// The link lets a burst through before it limits: a little under
	// size/rate is the least either can take.
	minimum := time.Duration(float64(size)/rate*float64(time.Second)) - 200*time.Millisecond
	limitedDown, limitedUp := down(), up()
	if limitedDown < minimum || limitedUp < minimum {
		t.Errorf("%d MiB over a %d MiB/s link took %v from the host and %v to it; at least %v each", size>>20, rate>>20, limitedDown, limitedUp, minimum)
	}
	shared.SetLinkRate(0)
	freeDown, freeUp := down(), up()
	// Lifted, the transfer itself is gone from what is timed: what is left
	// (starting kubectl and the stream) is the same in both runs.
	if limitedDown-freeDown < minimum/2 || limitedUp-freeUp < minimum/2 {
		t.Errorf("with the limit lifted the same streams took %v and %v, against %v and %v limited", freeDown, freeUp, limitedDown, limitedUp)
	}
	t.Logf("%d MiB at %d MiB/s: %v down, %v up; unlimited: %v down, %v up", size>>20, rate>>20, limitedDown, limitedUp, freeDown, freeUp)
}
