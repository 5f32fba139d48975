package box

import (
	"context"
	"io"
	"sync"
)

// logBuffer keeps a container's output so that logs and attach can both read
// it from the start, and followers are woken as it grows.
type logBuffer struct {
	mu     sync.Mutex
	data   []byte
	closed bool
	wake   chan struct{}
}

func newLogBuffer() *logBuffer { return &logBuffer{wake: make(chan struct{})} }

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.data = append(b.data, p...)
	close(b.wake)
	b.wake = make(chan struct{})
	return len(p), nil
}

// Close marks the end of the output (the process exited).
func (b *logBuffer) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed {
		b.closed = true
		close(b.wake)
		b.wake = make(chan struct{})
	}
}

func (b *logBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]byte(nil), b.data...)
}

// Follow copies everything written so far and then new output until Close
// or ctx ends.
func (b *logBuffer) Follow(ctx context.Context, w io.Writer) error {
	off := 0
	for {
		b.mu.Lock()
		chunk := b.data[off:]
		closed := b.closed
		wake := b.wake
		b.mu.Unlock()
		if len(chunk) > 0 {
			if _, err := w.Write(chunk); err != nil {
				return err
			}
			if f, ok := w.(interface{ Flush() }); ok {
				f.Flush()
			}
			off += len(chunk)
			continue
		}
		if closed {
			return nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
