package box

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

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
	if a.refuseUnits {
		return replyError(1, "Failed to start transient service unit: Connection timed out")
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
