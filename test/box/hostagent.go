package box

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// hostAgentPollPeriod is how often a host agent looks for requests.
const hostAgentPollPeriod = 100 * time.Millisecond

// Where the host tools and a node's host agent meet, in the host's /run. A
// stand-in writes its command line to requests/<id> (NUL-separated: working
// directory, program name, arguments; written to a dot-file and renamed),
// the agent removes the request when it takes it and answers with
// replies/<id>.out, <id>.err and lastly <id>.code. units/<name> records each
// transient unit's state, for the current boot only.
const (
	hostRequestsDir = "run/box/requests"
	hostRepliesDir  = "run/box/replies"
	hostUnitsDir    = "run/box/units"
)

var (
	requestIDPattern = regexp.MustCompile(`^[0-9A-Za-z_-]+$`)
	unitNamePattern  = regexp.MustCompile(`^[0-9A-Za-z:_.@\\-]+$`)
)

// hostAgent is a node's systemd, as much of it as the host tools need: it
// runs transient units (systemd-run, systemdrun.go) as host processes that
// belong to no pod, controls the kubelet service (systemctl, systemctl.go),
// and powers the machine off or reboots it (shutdown, hostshutdown.go). It
// is the box's, not a pod's, so what it starts outlives the debug pod that
// asked for it.
type hostAgent struct {
	b    *Box
	node *Node
	ctx  context.Context // the agent's lifetime: the box's

	mu          sync.Mutex
	on          bool // the machine is up; a machine that is off answers nothing
	bootTime    time.Time
	machine     context.Context // ends when the machine goes down
	machineStop context.CancelFunc
	off         context.Context // ends when the machine comes up again
	offEnd      context.CancelFunc
	units       map[string]*transientUnit
	lastRun     int // for the names of units started without --unit
	shutdown    *scheduledShutdown
	// refuseUnits: systemd-run fails as when PID 1 does not answer on D-Bus.
	refuseUnits bool

	unitsRunning sync.WaitGroup // the units' processes
	tasks        sync.WaitGroup // scheduled power-offs and reboots
}

// hostReply is what a host tool prints and how it exits.
type hostReply struct {
	stdout, stderr strings.Builder
	code           int
}

func replyError(code int, format string, args ...any) *hostReply {
	r := &hostReply{code: code}
	fmt.Fprintf(&r.stderr, format+"\n", args...)
	return r
}

// startHostAgents gives every node its host agent, which runs until ctx
// ends (the box's teardown, before the kubelets stop).
func (b *Box) startHostAgents(ctx context.Context) {
	for _, n := range b.NodeList() {
		b.startHostAgent(ctx, n)
	}
}

// startHostAgent gives one host its agent, which runs until ctx ends or the
// host is removed (n.stopAgent).
func (b *Box) startHostAgent(ctx context.Context, n *Node) {
	ctx, cancel := context.WithCancel(ctx)
	a := &hostAgent{b: b, node: n, ctx: ctx, units: map[string]*transientUnit{}}
	a.powerOn()
	n.agent, n.stopAgent = a, cancel
	b.wg.Add(1)
	go func() { defer b.wg.Done(); a.run(ctx) }()
}

func (a *hostAgent) run(ctx context.Context) {
	ticker := time.NewTicker(hostAgentPollPeriod)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			a.powerOff()
			a.tasks.Wait()
			a.unitsRunning.Wait()
			return
		case <-ticker.C:
			a.serveRequests()
		}
	}
}

func (a *hostAgent) root() string { return a.node.Sandbox.Root }

func (a *hostAgent) isOn() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.on
}

// powerOn is the machine booting: no unit runs, and none of the last boot's
// is known any more (/run is a tmpfs).
func (a *hostAgent) powerOn() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.on {
		return
	}
	// Requests and replies stay: the box's host commands, unlike a real
	// host's, may outlive its reboot and still wait for an answer.
	_ = os.RemoveAll(filepath.Join(a.root(), hostUnitsDir))
	if a.offEnd != nil {
		a.offEnd()
	}
	a.units = map[string]*transientUnit{}
	a.machine, a.machineStop = context.WithCancel(a.ctx)
	a.on, a.bootTime = true, time.Now()
}

// powerOff is the machine going down: a pending shutdown is moot, and every
// unit's processes are stopped.
func (a *hostAgent) powerOff() {
	a.mu.Lock()
	if !a.on {
		a.mu.Unlock()
		return
	}
	a.on = false
	a.off, a.offEnd = context.WithCancel(a.ctx)
	if a.shutdown != nil {
		close(a.shutdown.cancel)
		a.shutdown = nil
	}
	for _, u := range a.units {
		if u.state == "active" {
			u.stopping = true
			a.unitJournal(u.name, "Stopping %s.service - %s...", u.name, u.description)
		}
	}
	stop := a.machineStop
	a.mu.Unlock()
	stop()
	a.unitsRunning.Wait()
}

func (a *hostAgent) serveRequests() {
	if !a.isOn() {
		return
	}
	dir := filepath.Join(a.root(), hostRequestsDir)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		id := e.Name()
		if strings.HasPrefix(id, ".") || !requestIDPattern.MatchString(id) {
			continue
		}
		path := filepath.Join(dir, id)
		data, err := os.ReadFile(path)
		_ = os.Remove(path)
		if err != nil {
			continue
		}
		fields := strings.Split(strings.TrimSuffix(string(data), "\x00"), "\x00")
		if len(fields) < 2 {
			a.reply(id, replyError(1, "malformed request to the box's systemd"))
			continue
		}
		if r := a.handle(id, fields[0], fields[1], fields[2:]); r != nil {
			a.reply(id, r)
		}
	}
}

// reply answers request id; the code file comes last, as the signal that
// the answer is complete.
func (a *hostAgent) reply(id string, r *hostReply) {
	dir := filepath.Join(a.root(), hostRepliesDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return
	}
	base := filepath.Join(dir, id)
	_ = os.WriteFile(base+".out", []byte(r.stdout.String()), 0o644)
	_ = os.WriteFile(base+".err", []byte(r.stderr.String()), 0o644)
	_ = os.WriteFile(base+".code.tmp", []byte(strconv.Itoa(r.code)), 0o644)
	_ = os.Rename(base+".code.tmp", base+".code")
}

// handle runs one request; a nil reply is answered later (systemd-run --wait).
func (a *hostAgent) handle(id, cwd, program string, args []string) *hostReply {
	switch program {
	case "systemd-run":
		return a.systemdRun(id, cwd, args)
	case "systemctl":
		return a.systemctl(args)
	case "shutdown":
		return a.shutdownCommand(args)
	case "reboot", "poweroff", "halt":
		a.schedulePowerAction(program, 0)
		return &hostReply{}
	}
	return replyError(1, "%s: not a command of the box's systemd", program)
}

// ---- formats, shared by systemd-run, systemctl and shutdown ----

// systemdTimeFormat is how systemd prints a timestamp.
const systemdTimeFormat = "Mon 2006-01-02 15:04:05 MST"

// timespan prints a duration as systemd does ("3min 2s", "1.005s" when
// precise); coarse keeps the two largest units.
func timespan(d time.Duration, precise bool) string {
	if precise && d < time.Minute {
		if d < time.Second {
			return fmt.Sprintf("%dms", d.Milliseconds())
		}
		return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.3f", d.Seconds()), "0"), ".") + "s"
	}
	units := []struct {
		size time.Duration
		name string
	}{{24 * time.Hour, " days"}, {time.Hour, "h"}, {time.Minute, "min"}, {time.Second, "s"}}
	var parts []string
	for _, u := range units {
		if n := d / u.size; n > 0 && len(parts) < 2 {
			parts = append(parts, fmt.Sprintf("%d%s", n, u.name))
			d -= n * u.size
		}
	}
	if len(parts) == 0 {
		return fmt.Sprintf("%dms", d.Milliseconds())
	}
	return strings.Join(parts, " ")
}
