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

// powerActionGrace is the least time between a shutdown's request and the
// machine going down.
const powerActionGrace = 500 * time.Millisecond

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
// runs transient units (systemd-run) as host processes that belong to no
// pod, controls the kubelet service (systemctl), and powers the machine
// off or reboots it (shutdown). It is the box's, not a pod's, so what it
// starts outlives the debug pod that asked for it.
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

	unitsRunning sync.WaitGroup // the units' processes
	tasks        sync.WaitGroup // scheduled power-offs and reboots
}

// transientUnit is a service started by systemd-run.
type transientUnit struct {
	name, description string
	argv              []string
	pid               int
	started           time.Time
	since             time.Time // of the current state
	state             string    // active, inactive or failed
	code              int
	stopping          bool // stopped on request, not ended by itself
	stop              context.CancelFunc
	ended             chan struct{}
	waiters           []*unitWaiter // systemd-run --wait calls to answer when it ends
}

type unitWaiter struct {
	id    string
	quiet bool
}

type scheduledShutdown struct {
	action string // poweroff, halt or reboot
	at     time.Time
	cancel chan struct{}
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

// ---- systemd-run ----

// runOptionsWithValue are systemd-run's options that take a value, by long
// name; runShortOptions maps short options to long ones.
var (
	runOptionsWithValue = map[string]bool{"unit": true, "description": true, "property": true, "setenv": true,
		"working-directory": true, "service-type": true, "uid": true, "gid": true, "nice": true, "slice": true}
	runShortOptions = map[byte]string{'u': "unit", 'p': "property", 'E': "setenv", 'G': "collect", 'r': "remain-after-exit",
		'q': "quiet", 'd': "same-dir", 't': "pty", 'P': "pipe", 'S': "shell", 'M': "machine", 'H': "host"}
)

type runRequest struct {
	unit, description, dir string
	env                    []string
	wait, quiet            bool
	argv                   []string
}

func parseSystemdRun(cwd string, args []string) (runRequest, error) {
	var req runRequest
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if arg == "--" {
			req.argv = args[i+1:]
			break
		}
		if !strings.HasPrefix(arg, "-") || arg == "-" {
			req.argv = args[i:]
			break
		}
		var name, value string
		hasValue := false
		if strings.HasPrefix(arg, "--") {
			name = arg[2:]
			if k := strings.IndexByte(name, '='); k >= 0 {
				name, value, hasValue = name[:k], name[k+1:], true
			}
		} else {
			long, ok := runShortOptions[arg[1]]
			if !ok {
				return req, fmt.Errorf("systemd-run: invalid option -- '%c'", arg[1])
			}
			name = long
			if len(arg) > 2 {
				if !runOptionsWithValue[long] {
					return req, fmt.Errorf("systemd-run: combined short options (%s) are not supported by the box", arg)
				}
				value, hasValue = arg[2:], true
			}
		}
		if runOptionsWithValue[name] && !hasValue {
			if i+1 >= len(args) {
				return req, fmt.Errorf("systemd-run: option '--%s' requires an argument", name)
			}
			i++
			value = args[i]
		}
		switch name {
		case "unit":
			req.unit = value
		case "description":
			req.description = value
		case "setenv":
			if strings.Contains(value, "=") {
				req.env = append(req.env, value)
			}
		case "working-directory":
			req.dir = value
		case "same-dir":
			req.dir = cwd
		case "wait":
			req.wait = true
		case "quiet":
			req.quiet = true
		case "property", "service-type", "uid", "gid", "nice", "slice", "collect", "remain-after-exit",
			"no-block", "system", "no-ask-password", "send-sighup":
			// Nothing a box host does differently.
		case "user", "scope", "pty", "pipe", "shell", "machine", "host":
			return req, fmt.Errorf("systemd-run: --%s is not supported by the box's systemd-run", name)
		default:
			if strings.HasPrefix(name, "on-") || strings.HasSuffix(name, "-property") {
				return req, fmt.Errorf("systemd-run: timers (--%s) are not supported by the box's systemd-run", name)
			}
			return req, fmt.Errorf("systemd-run: unrecognized option '--%s'", name)
		}
	}
	if len(req.argv) == 0 {
		return req, fmt.Errorf("Command line to execute required.")
	}
	return req, nil
}

// unitName strips the .service suffix that commands may or may not give.
func unitName(s string) string { return strings.TrimSuffix(s, ".service") }

func (a *hostAgent) systemdRun(id, cwd string, args []string) *hostReply {
	req, err := parseSystemdRun(cwd, args)
	if err != nil {
		return replyError(1, "%v", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.on {
		return replyError(1, "Failed to start transient service unit: Transaction is destructive.")
	}
	name := unitName(req.unit)
	if name == "" {
		a.lastRun++
		name = fmt.Sprintf("run-u%d", 100+a.lastRun)
	}
	if !unitNamePattern.MatchString(name) || strings.Contains(name, "/") {
		return replyError(1, "Failed to mangle unit name: Invalid argument")
	}
	if name == "kubelet" || name == "crio" {
		return replyError(1, "Failed to start transient service unit: Unit %s.service was already loaded or has a fragment file.", name)
	}
	if u := a.units[name]; u != nil && u.state == "active" {
		return replyError(1, "Failed to start transient service unit: Unit %s.service already exists.", name)
	}
	desc := req.description
	if desc == "" {
		desc = strings.Join(req.argv, " ")
	}
	u := &transientUnit{name: name, description: desc, argv: req.argv, state: "active", ended: make(chan struct{})}
	ctx, stop := context.WithCancel(a.machine)
	u.stop = stop
	cmd, err := a.node.Sandbox.Command(ctx, HostCommand{Argv: req.argv, Env: req.env, Dir: req.dir})
	if err != nil {
		stop()
		return replyError(1, "Failed to start transient service unit: %v", err)
	}
	out := &journalWriter{sb: a.node.Sandbox, unit: name, ident: filepath.Base(req.argv[0])}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = 2 * time.Second
	a.unitJournal(name, "Started %s.service - %s.", name, desc)
	// The output goroutine may write before the process id is known: it
	// waits for it on the writer's lock.
	out.mu.Lock()
	err = cmd.Start()
	if err == nil {
		out.pid = cmd.Process.Pid
	}
	out.mu.Unlock()
	if err != nil {
		stop()
		return replyError(1, "Failed to start transient service unit: %v", err)
	}
	u.pid, u.started, u.since = cmd.Process.Pid, time.Now(), time.Now()
	a.units[name] = u
	a.writeUnitState(u)
	a.unitsRunning.Add(1)
	go func() {
		defer a.unitsRunning.Done()
		err := cmd.Wait()
		out.Close()
		stop()
		a.unitEnded(u, exitCode(err))
	}()

	if req.wait {
		u.waiters = append(u.waiters, &unitWaiter{id: id, quiet: req.quiet})
		return nil
	}
	r := &hostReply{}
	if !req.quiet {
		fmt.Fprintf(&r.stderr, "Running as unit: %s.service\n", name)
	}
	return r
}

func (a *hostAgent) unitEnded(u *transientUnit, code int) {
	a.mu.Lock()
	u.code, u.since = code, time.Now()
	switch {
	case u.stopping:
		u.state = "inactive"
		a.unitJournal(u.name, "%s.service: Deactivated successfully.\nStopped %s.service - %s.", u.name, u.name, u.description)
	case code == 0:
		u.state = "inactive"
		a.unitJournal(u.name, "%s.service: Deactivated successfully.", u.name)
	default:
		u.state = "failed"
		a.unitJournal(u.name, "%s.service: Main process exited, code=exited, status=%d/FAILURE\n%s.service: Failed with result 'exit-code'.", u.name, code, u.name)
	}
	a.writeUnitState(u)
	waiters := u.waiters
	u.waiters = nil
	close(u.ended)
	a.mu.Unlock()
	for _, w := range waiters {
		r := &hostReply{code: code}
		if !w.quiet {
			result := "success"
			if u.state == "failed" {
				result = "exit-code"
			}
			fmt.Fprintf(&r.stderr, "Running as unit: %s.service\nFinished with result: %s\nMain processes terminated with: code=exited/status=%d\nService runtime: %s\n",
				u.name, result, code, timespan(u.since.Sub(u.started), true))
		}
		a.reply(w.id, r)
	}
}

// unitJournal records what systemd says about a unit.
func (a *hostAgent) unitJournal(unit, format string, args ...any) {
	appendJournal(a.node.Sandbox, unit, "systemd", 1, fmt.Sprintf(format, args...))
}

// writeUnitState records a unit's state in /run/box/units/<name> in
// `systemctl show`'s key=value form, for scripts and people to read.
func (a *hostAgent) writeUnitState(u *transientUnit) {
	sub := map[string]string{"active": "running", "inactive": "dead", "failed": "failed"}[u.state]
	state := fmt.Sprintf("Id=%s.service\nDescription=%s\nActiveState=%s\nSubState=%s\nMainPID=%d\nExecMainStatus=%d\nExecStart=%s\nStateChangeTimestamp=%s\n",
		u.name, u.description, u.state, sub, u.pid, u.code, strings.Join(u.argv, " "), u.since.Format(systemdTimeFormat))
	dir := filepath.Join(a.root(), hostUnitsDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return
	}
	tmp := filepath.Join(dir, "."+u.name+".tmp")
	if os.WriteFile(tmp, []byte(state), 0o644) == nil {
		_ = os.Rename(tmp, filepath.Join(dir, u.name))
	}
}

// ---- systemctl ----

func (a *hostAgent) systemctl(args []string) *hostReply {
	var words []string
	quiet := false
	for _, arg := range args {
		switch {
		case arg == "-q" || arg == "--quiet":
			quiet = true
		case strings.HasPrefix(arg, "-"):
			// --no-pager, --no-block, --now, -l, --full, -f, ...: nothing
			// the box's answers depend on.
		default:
			words = append(words, arg)
		}
	}
	if len(words) == 0 {
		return replyError(1, "systemctl: the box's systemctl does not list units; name a verb and units")
	}
	verb, units := words[0], words[1:]
	switch verb {
	case "start", "stop", "restart", "try-restart", "reload-or-restart":
		if len(units) == 0 {
			return replyError(1, "Too few arguments.")
		}
		r := &hostReply{}
		for _, u := range units {
			a.controlUnit(verb, unitName(u), r)
		}
		return r
	case "is-active", "is-failed":
		r := &hostReply{code: 3}
		if verb == "is-failed" {
			r.code = 1
		}
		allActive := len(units) > 0
		for _, u := range units {
			state := a.activeState(unitName(u))
			if !quiet {
				fmt.Fprintln(&r.stdout, state)
			}
			allActive = allActive && state == "active"
			if verb == "is-failed" && state == "failed" {
				r.code = 0
			}
		}
		if verb == "is-active" && allActive {
			r.code = 0
		}
		return r
	case "status":
		r := &hostReply{}
		for i, u := range units {
			if i > 0 {
				r.stdout.WriteString("\n")
			}
			a.status(unitName(u), r)
		}
		return r
	case "daemon-reload", "enable", "disable", "mask", "unmask":
		return &hostReply{}
	case "reset-failed":
		a.mu.Lock()
		for name, u := range a.units {
			if u.state == "failed" && (len(units) == 0 || contains(units, name) || contains(units, name+".service")) {
				delete(a.units, name)
			}
		}
		a.mu.Unlock()
		return &hostReply{}
	case "poweroff", "reboot", "halt":
		a.schedulePowerAction(verb, 0)
		return &hostReply{}
	}
	return replyError(1, "Unknown command verb '%s'.", verb)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// controlUnit starts, stops or restarts one unit, as systemctl waits for it.
func (a *hostAgent) controlUnit(verb, name string, r *hostReply) {
	switch name {
	case "kubelet":
		ctx, cancel := context.WithTimeout(a.ctx, time.Minute)
		defer cancel()
		k := a.node.Kubelet
		var err error
		switch verb {
		case "start":
			err = k.StartService(ctx)
		case "stop":
			err = k.StopService(ctx)
		default:
			err = k.RestartService(ctx)
		}
		if err != nil {
			klogf("host %s: systemctl %s kubelet: %v", a.node.Name, verb, err)
			fmt.Fprintf(&r.stderr, "Job for kubelet.service failed because the control process exited with error code.\n"+
				"See \"systemctl status kubelet.service\" and \"journalctl -xeu kubelet.service\" for details.\n")
			r.code = 1
		}
		return
	case "crio":
		if verb == "stop" {
			fmt.Fprintf(&r.stderr, "Failed to stop crio.service: the box's container runtime stops only with the machine.\n")
			r.code = 1
		}
		return
	}
	a.mu.Lock()
	u := a.units[name]
	active := u != nil && u.state == "active"
	if active && verb == "stop" {
		u.stopping = true
		a.unitJournal(name, "Stopping %s.service - %s...", name, u.description)
		u.stop()
	}
	a.mu.Unlock()
	switch {
	case !active:
		if verb != "stop" || u == nil {
			fmt.Fprintf(&r.stderr, "Failed to %s %s.service: Unit %s.service not found.\n", verb, name, name)
			r.code = 5
		}
	case verb == "stop":
		select {
		case <-u.ended:
		case <-time.After(30 * time.Second):
			fmt.Fprintf(&r.stderr, "Job for %s.service timed out.\n", name)
			r.code = 1
		}
	case verb != "start":
		fmt.Fprintf(&r.stderr, "Failed to %s %s.service: the box's systemd does not restart transient units.\n", verb, name)
		r.code = 1
	}
}

func (a *hostAgent) activeState(name string) string {
	switch name {
	case "kubelet":
		if active, _, _ := a.node.Kubelet.ServiceStatus(); active {
			return "active"
		}
		return "inactive"
	case "crio":
		return "active"
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if u := a.units[name]; u != nil {
		return u.state
	}
	return "inactive"
}

// status writes `systemctl status` for one unit: its state and the end of
// its journal. Exit status as systemctl's: 0 running, 3 not, 4 no such unit.
func (a *hostAgent) status(name string, r *hostReply) {
	w := &r.stdout
	var lines []string
	switch name {
	case "kubelet":
		active, since, pid := a.node.Kubelet.ServiceStatus()
		mark, state := "●", "active (running)"
		if !active {
			mark, state = "○", "inactive (dead)"
			r.code = 3
		}
		fmt.Fprintf(w, "%s kubelet.service - Kubernetes Kubelet\n", mark)
		fmt.Fprintf(w, "     Loaded: loaded (/etc/systemd/system/kubelet.service; enabled; preset: disabled)\n")
		fmt.Fprintf(w, "     Active: %s since %s; %s ago\n", state, since.Format(systemdTimeFormat), timespan(time.Since(since), false))
		if active {
			fmt.Fprintf(w, "   Main PID: %d (kubenswrapper)\n", pid)
		}
	case "crio":
		a.mu.Lock()
		boot := a.bootTime
		a.mu.Unlock()
		fmt.Fprintf(w, "● crio.service - Container Runtime Interface for OCI (CRI-O)\n")
		fmt.Fprintf(w, "     Loaded: loaded (/usr/lib/systemd/system/crio.service; disabled; preset: disabled)\n")
		fmt.Fprintf(w, "     Active: active (running) since %s; %s ago\n", boot.Format(systemdTimeFormat), timespan(time.Since(boot), false))
	default:
		a.mu.Lock()
		u := a.units[name]
		var snapshot transientUnit
		if u != nil {
			snapshot = *u
		}
		a.mu.Unlock()
		// A transient unit that ended well is garbage-collected at once.
		if u == nil || snapshot.state == "inactive" {
			fmt.Fprintf(&r.stderr, "Unit %s.service could not be found.\n", name)
			r.code = 4
			return
		}
		mark, state := "●", "active (running)"
		if snapshot.state == "failed" {
			mark, state = "×", "failed (Result: exit-code)"
			r.code = 3
		}
		fmt.Fprintf(w, "%s %s.service - %s\n", mark, name, snapshot.description)
		fmt.Fprintf(w, "     Loaded: loaded (/run/systemd/transient/%s.service; transient)\n", name)
		fmt.Fprintf(w, "  Transient: yes\n")
		fmt.Fprintf(w, "     Active: %s since %s; %s ago\n", state, snapshot.since.Format(systemdTimeFormat), timespan(time.Since(snapshot.since), false))
		if snapshot.state == "active" {
			fmt.Fprintf(w, "   Main PID: %d (%s)\n", snapshot.pid, filepath.Base(snapshot.argv[0]))
		} else {
			fmt.Fprintf(w, "   Main PID: %d (code=exited, status=%d/FAILURE)\n", snapshot.pid, snapshot.code)
		}
	}
	if data, err := os.ReadFile(filepath.Join(a.root(), journalDir, name+".log")); err == nil {
		lines = strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(lines) > 10 {
			lines = lines[len(lines)-10:]
		}
		fmt.Fprintf(w, "\n%s\n", strings.Join(lines, "\n"))
	}
}

// ---- shutdown ----

func (a *hostAgent) shutdownCommand(args []string) *hostReply {
	action, cancel, wallOnly := "poweroff", false, false
	var when []string
	for _, arg := range args {
		switch arg {
		case "-h", "-P", "--poweroff":
			action = "poweroff"
		case "-H", "--halt":
			action = "halt"
		case "-r", "--reboot":
			action = "reboot"
		case "-c":
			cancel = true
		case "-k":
			wallOnly = true
		case "--no-wall":
		default:
			if strings.HasPrefix(arg, "-") {
				return replyError(1, "shutdown: invalid option -- '%s'", strings.TrimLeft(arg, "-"))
			}
			when = append(when, arg) // the time, then a wall message
		}
	}
	if cancel {
		a.mu.Lock()
		if a.shutdown != nil {
			close(a.shutdown.cancel)
			a.shutdown = nil
		}
		a.mu.Unlock()
		return &hostReply{}
	}
	spec := "+1"
	if len(when) > 0 {
		spec = when[0]
	}
	delay, err := shutdownDelay(spec, a.b.opts.MinuteScale, time.Now())
	if err != nil {
		return replyError(1, "%v", err)
	}
	if wallOnly {
		return &hostReply{}
	}
	at := a.schedulePowerAction(action, delay)
	r := &hostReply{}
	if delay > 0 {
		verb := map[string]string{"poweroff": "Shutdown", "halt": "Shutdown", "reboot": "Reboot"}[action]
		fmt.Fprintf(&r.stderr, "%s scheduled for %s, use 'shutdown -c' to cancel.\n", verb, at.Format(systemdTimeFormat))
	}
	return r
}

// shutdownDelay reads shutdown's TIME: now, +m or m (minutes), or hh:mm;
// a minute lasts minute (Options.MinuteScale) in the box.
func shutdownDelay(spec string, minute time.Duration, now time.Time) (time.Duration, error) {
	if spec == "now" {
		return 0, nil
	}
	if m, err := strconv.Atoi(strings.TrimPrefix(spec, "+")); err == nil && m >= 0 {
		return time.Duration(m) * minute, nil
	}
	if t, err := time.ParseInLocation("15:04", spec, now.Location()); err == nil {
		at := time.Date(now.Year(), now.Month(), now.Day(), t.Hour(), t.Minute(), 0, 0, now.Location())
		if at.Before(now) {
			at = at.Add(24 * time.Hour)
		}
		return time.Duration(float64(at.Sub(now)) / float64(time.Minute) * float64(minute)), nil
	}
	return 0, fmt.Errorf("Failed to parse time specification: %s", spec)
}

// schedulePowerAction powers the machine off (poweroff, halt) or reboots it
// after delay, replacing any shutdown already scheduled, and says when.
func (a *hostAgent) schedulePowerAction(action string, delay time.Duration) time.Time {
	// A machine takes a moment to go down: the command that asked for it
	// gets its answer first.
	delay = max(delay, powerActionGrace)
	s := &scheduledShutdown{action: action, at: time.Now().Add(delay), cancel: make(chan struct{})}
	a.mu.Lock()
	if a.shutdown != nil {
		close(a.shutdown.cancel)
	}
	a.shutdown = s
	a.tasks.Add(1)
	a.mu.Unlock()
	go func() {
		defer a.tasks.Done()
		timer := time.NewTimer(delay)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-s.cancel:
			return
		case <-a.ctx.Done():
			return
		}
		a.mu.Lock()
		if a.shutdown != s {
			a.mu.Unlock()
			return // cancelled as the timer fired
		}
		a.shutdown = nil
		a.mu.Unlock()
		a.powerCycle(action)
	}()
	return s.at
}

// powerCycle is what the machine does at the scheduled time: go down as
// Box.StopMachine does (a halted guest stops its instance), and for a reboot
// come back up.
func (a *hostAgent) powerCycle(action string) {
	klogf("host %s: %s", a.node.Name, action)
	a.b.powerDown(a.node)
	// What the cluster learns of it is written while the machine is off:
	// should it boot again before the API answers (the whole cluster going
	// down and up), that news is stale and must not overwrite the new.
	a.mu.Lock()
	off := a.off
	a.mu.Unlock()
	if off == nil {
		off = a.ctx
	}
	reportCtx, cancelReport := context.WithTimeout(off, 2*time.Minute)
	defer cancelReport()
	if err := a.b.reportStopped(reportCtx, a.node); err != nil && reportCtx.Err() == nil {
		klogf("host %s: %s: %v", a.node.Name, action, err)
	}
	ctx, cancel := context.WithTimeout(a.ctx, 2*time.Minute)
	defer cancel()
	if action == "reboot" && ctx.Err() == nil {
		if err := a.b.StartMachine(ctx, a.node.Name); err != nil && ctx.Err() == nil {
			klogf("host %s: reboot: %v", a.node.Name, err)
		}
	}
}

// ---- formats ----

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
