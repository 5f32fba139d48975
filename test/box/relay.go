package box

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// relay forwards a listening address to a target, and can drop every
// connection at once. It stands in front of each etcd member's client port so
// that a member "losing power" cuts its clients off immediately, instead of
// the embedded server waiting for their streams to drain.
type relay struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
	// hung: new connections are accepted and read, but never forwarded nor
	// answered, as by a server that hangs.
	hung atomic.Bool
}

func newRelay(listen, target string) (*relay, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, err
	}
	return newRelayOn(ln, target), nil
}

// newRelayOn relays what ln accepts to target; closing the relay closes ln.
func newRelayOn(ln net.Listener, target string) *relay {
	r := &relay{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	r.wg.Add(1)
	go r.accept()
	return r
}

func (r *relay) accept() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.wg.Add(1)
		go r.pipe(c)
	}
}

func (r *relay) track(c net.Conn, on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if on {
		r.conns[c] = struct{}{}
	} else {
		delete(r.conns, c)
	}
}

func (r *relay) pipe(client net.Conn) {
	defer r.wg.Done()
	if r.hung.Load() {
		r.track(client, true)
		_, _ = io.Copy(io.Discard, client) // until the client, dropAll or Close ends it
		_ = client.Close()
		r.track(client, false)
		return
	}
	server, err := net.Dial("tcp", r.target)
	if err != nil {
		_ = client.Close()
		return
	}
	r.track(client, true)
	r.track(server, true)
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(server, client); done <- struct{}{} }()
	go func() { _, _ = io.Copy(client, server); done <- struct{}{} }()
	<-done
	_ = client.Close()
	_ = server.Close()
	<-done
	r.track(client, false)
	r.track(server, false)
}

// dropAll closes every open connection; new ones are still accepted.
func (r *relay) dropAll() {
	r.mu.Lock()
	for c := range r.conns {
		_ = c.Close()
	}
	r.mu.Unlock()
}

// Close stops accepting and drops every connection.
func (r *relay) Close() {
	_ = r.ln.Close()
	r.dropAll()
	r.wg.Wait()
}
