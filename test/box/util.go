package box

import (
	"fmt"
	"io"
	"log"
	"sync"

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
