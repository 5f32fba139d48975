package box

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	remotecommandconsts "k8s.io/apimachinery/pkg/util/remotecommand"
)

func remotecommandProtocols() []string { return remotecommandconsts.SupportedStreamingProtocols }

func everything() labels.Selector { return labels.Everything() }

func discardLogger() *log.Logger { return log.New(io.Discard, "", 0) }

var (
	boxLogMu sync.Mutex
	boxLog   io.Writer = io.Discard
)

// klogf records what the simulators want a person debugging the box to see.
func klogf(format string, args ...any) {
	boxLogMu.Lock()
	defer boxLogMu.Unlock()
	fmt.Fprintf(boxLog, format+"\n", args...)
}

// roundTimeout bounds one round of a simulated controller: a request that
// hangs (its connection lost while etcd had no quorum) must not hold the
// controller up for good. A real controller's would end with its process,
// restarted once it lost its leader-election lease.
const roundTimeout = 2 * time.Minute

// everyRound calls fn once a period with a context bounded by
// roundTimeout, the first time after one period, until ctx ends.
func everyRound(ctx context.Context, period time.Duration, fn func(context.Context)) {
	everyPeriod(ctx, period, func() {
		rctx, cancel := context.WithTimeout(ctx, roundTimeout)
		defer cancel()
		fn(rctx)
	})
}

// everyPeriod calls fn once a period, the first time after one period, until
// ctx ends: the loop of the box's simulated controllers.
func everyPeriod(ctx context.Context, period time.Duration, fn func()) {
	ticker := time.NewTicker(period)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		fn()
	}
}

// moduleDir is the test module's root on disk, found from this file's
// location (tests and the demo binary run on the machine that built them).
func moduleDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

func randomHex(n int) string {
	buf := make([]byte, n)
	_, _ = rand.Read(buf)
	return hex.EncodeToString(buf)
}

func newUUID() string {
	buf := make([]byte, 16)
	_, _ = rand.Read(buf)
	buf[6] = buf[6]&0x0f | 0x40
	buf[8] = buf[8]&0x3f | 0x80
	h := hex.EncodeToString(buf)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
