package box

import (
	"context"
	"fmt"
	"io"
	"log"
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
