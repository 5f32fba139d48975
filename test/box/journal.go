package box

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// journalDir holds a host's journal, one file per unit (NAME.log), in
// journalctl's short output format, for the journalctl stand-in to print.
// It lives in /var/log, so it survives a reboot as the real journal does.
const journalDir = "var/log/journal"

// journalTimeFormat is journalctl's short format's timestamp.
const journalTimeFormat = "Jan 02 15:04:05"

// appendJournal adds one entry to unit's journal on the host sb, attributed
// to ident[pid] (systemd[1] for systemd's own messages).
func appendJournal(sb *Sandbox, unit, ident string, pid int, text string) {
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		fmt.Fprintf(&b, "%s %s %s[%d]: %s\n", time.Now().Format(journalTimeFormat), sb.Node, ident, pid, line)
	}
	dir := filepath.Join(sb.Root, journalDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return
	}
	// One write per entry to a file opened for appending: concurrent
	// writers never interleave within a line.
	f, err := os.OpenFile(filepath.Join(dir, unit+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return
	}
	_, _ = f.WriteString(b.String())
	_ = f.Close()
}

// journal records a message of the kubelet in its unit's journal.
func (k *FakeKubelet) journal(format string, args ...any) {
	appendJournal(k.Sandbox, "kubelet", "kubenswrapper", int(k.servicePID.Load()), fmt.Sprintf(format, args...))
}

// unitJournal records what systemd says about the kubelet unit.
func (k *FakeKubelet) unitJournal(format string, args ...any) {
	appendJournal(k.Sandbox, "kubelet", "systemd", 1, fmt.Sprintf(format, args...))
}

// journalWriter turns a unit's output into journal entries, a line each.
type journalWriter struct {
	sb          *Sandbox
	unit, ident string
	pid         int

	mu      sync.Mutex
	partial []byte
}

func (w *journalWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		appendJournal(w.sb, w.unit, w.ident, w.pid, string(w.partial[:i]))
		w.partial = w.partial[i+1:]
	}
	return len(p), nil
}

// Close records a last line that had no newline.
func (w *journalWriter) Close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.partial) > 0 {
		appendJournal(w.sb, w.unit, w.ident, w.pid, string(w.partial))
		w.partial = nil
	}
}
