package box

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// powerActionGrace is the least time between a shutdown's request and the
// machine going down.
const powerActionGrace = 500 * time.Millisecond

type scheduledShutdown struct {
	action string // poweroff, halt or reboot
	at     time.Time
	cancel chan struct{}
}

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
	if action == "reboot" {
		a.reboot()
		return
	}
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
}

// reboot brings the machine that just went down up again. A reboot is the
// guest's own business: the cloud's instance keeps running, so nothing
// is reported in its Machine, and the machine comes back whether or not
// the API answers (a control-plane host rebooting in a restore's
// blackout). That its node is down is told only if the API answers at
// once; else the node lifecycle controller finds the kubelet silent.
func (a *hostAgent) reboot() {
	ctx, cancel := context.WithTimeout(a.ctx, 5*time.Second)
	_ = a.node.Kubelet.setNodeReady(ctx, false)
	cancel()
	if a.ctx.Err() != nil {
		return
	}
	a.powerOn()
	if a.b.opts.NodeCSRsOnBoot {
		a.node.Kubelet.ExpireCertificates()
	}
	// It boots as after a power-on: the static pods first, the API when
	// it answers.
	if err := a.node.Kubelet.Boot(a.ctx); err != nil && a.ctx.Err() == nil {
		klogf("host %s: reboot: %v", a.node.Name, err)
	}
}
