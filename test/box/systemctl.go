package box

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

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
