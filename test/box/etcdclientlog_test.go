package box

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

// The apiserver's etcd client logger is reached by name: it is the one the
// storage factory built at start-up (set before the box touches it), and
// once the box has replaced it, it writes to the box's log.
func TestApiserverEtcdClientsLogToTheBoxLog(t *testing.T) {
	if apiserverEtcdClientLogger == nil {
		t.Fatal("the apiserver's etcd client logger is not linked: nil before the box sets it")
	}
	var log bytes.Buffer
	boxLogMu.Lock()
	boxLog = &log
	boxLogMu.Unlock()
	defer func() {
		boxLogMu.Lock()
		boxLog = io.Discard
		boxLogMu.Unlock()
	}()
	quietEtcdClients()
	apiserverEtcdClientLogger.Warn("retrying of unary invoker failed")
	if got := log.String(); !strings.Contains(got, `"logger":"etcd-client"`) || !strings.Contains(got, "retrying of unary invoker failed") {
		t.Fatalf("box log = %q", got)
	}
}
