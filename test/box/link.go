package box

import (
	"context"
	"net"

	"golang.org/x/time/rate"
)

// linkBurst is how many bytes the link lets through at once: small enough
// that a limited stream is smooth (5 ms at 50 MiB/s), large enough that
// the limiter is not what an unlimited one pays for.
const linkBurst = 256 << 10

// wanLink is the network between the administrator and the cluster, where
// an exec or port-forward stream is slowest on a real cluster: a VPN or a
// WAN between a laptop and a data centre. The box has no such network (the
// plugin, the apiserver and the kubelets share the loopback), so its
// kubelets' streaming servers carry it: every connection to any of them
// shares one budget per direction, as streams share one link. Unlimited
// until SetLinkRate.
type wanLink struct {
	toClient, fromClient *rate.Limiter
}

func newWANLink() *wanLink {
	return &wanLink{toClient: rate.NewLimiter(rate.Inf, linkBurst), fromClient: rate.NewLimiter(rate.Inf, linkBurst)}
}

// set limits each direction to bytesPerSecond; zero lifts the limit.
func (l *wanLink) set(bytesPerSecond int64) {
	r := rate.Inf
	if bytesPerSecond > 0 {
		r = rate.Limit(bytesPerSecond)
	}
	l.toClient.SetLimit(r)
	l.fromClient.SetLimit(r)
}

// listen wraps a streaming server's listener: the limit applies to the
// bytes on the wire, under TLS.
func (l *wanLink) listen(ln net.Listener) net.Listener { return &linkListener{Listener: ln, link: l} }

type linkListener struct {
	net.Listener
	link *wanLink
}

func (ln *linkListener) Accept() (net.Conn, error) {
	c, err := ln.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &linkConn{Conn: c, link: ln.link}, nil
}

type linkConn struct {
	net.Conn
	link *wanLink
}

// Read pays for what arrived after it arrived, so a read never waits for
// bytes the sender has not sent.
func (c *linkConn) Read(p []byte) (int, error) {
	if len(p) > linkBurst {
		p = p[:linkBurst]
	}
	n, err := c.Conn.Read(p)
	if n > 0 {
		_ = c.link.fromClient.WaitN(context.Background(), n)
	}
	return n, err
}

func (c *linkConn) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		chunk := min(len(p), linkBurst)
		_ = c.link.toClient.WaitN(context.Background(), chunk)
		n, err := c.Conn.Write(p[:chunk])
		written += n
		if err != nil {
			return written, err
		}
		p = p[chunk:]
	}
	return written, nil
}

// SetLinkRate limits the streams between the administrator and the hosts
// (exec, attach, port-forward: what kubectl cp, oc-recover's transfers
// and its etcd access ride on) to bytesPerSecond in each direction, all
// streams together, as one WAN link would; zero lifts the limit. The
// API's own requests are not limited.
func (b *Box) SetLinkRate(bytesPerSecond int64) { b.link.set(bytesPerSecond) }
