package backup

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oc-recover/oc-recover/pkg/debugnode"
)

// hostBackupRoot is where backups are written on the host, as in
// OpenShift's documentation; each run uses a directory of its own below it.
const hostBackupRoot = "/home/core/assets/backup"

// The backup scripts of concurrent oc-recover runs on one host run one at
// a time, under a lock (flock) on hostBackupRoot itself, so that no lock
// file is left behind. The script is not safe to run twice at once: since
// 4.11 it copies etcdctl out of the etcd image into one shared directory,
// and copying over an etcdctl that another run is executing fails ("Text
// file busy"). Downloads, which take longest, are not serialised.

// DefaultSilenceTimeout is how long the host script may print nothing
// before the backup gives up on it (--silence-timeout). The quietest step
// is `etcdctl snapshot save`, which prints nothing while the snapshot
// streams: several minutes for a large database on a slow disk.
const DefaultSilenceTimeout = 10 * time.Minute

// Script output lines the wrapper adds, to tell them from the script's own.
const (
	wrapperPrefix = "oc-recover: "
	scriptBegins  = wrapperPrefix + "script output begins"
	scriptEnds    = wrapperPrefix + "script exited "
	fileLine      = wrapperPrefix + "file "
)

// errSilent ends a host script that printed nothing for too long.
var errSilent = errors.New("the backup script went silent")

// errDirExists: the run's host directory existed before the run, so it is
// not the run's to remove.
var errDirExists = errors.New("the host directory exists already")

// newHostDir names the host directory of one run: the time, for people
// reading the host, and 48 random bits, so that two runs started within the
// same second (or on two machines) never share one. The wrapper creates it
// with mkdir, which fails if it exists: a run only ever removes the
// directory it made.
func newHostDir(now time.Time) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s/oc-recover-%s-%s", hostBackupRoot, now.UTC().Format("20060102-150405"), hex.EncodeToString(b[:]))
}

// wrapperScript runs the etcd operator's backup script on the host. It
// makes this run's directory; takes the host lock on the backup root,
// waiting for another run's script (saying so at once, then every
// OC_RECOVER_LOCK_TICK seconds, so the wait never looks like silence) up to
// OC_RECOVER_LOCK_WAIT seconds; passes --force where the script takes it
// and the run asks for it (OC_RECOVER_FORCE=1); traces the script's
// commands into a file beside the directory (BASH_XTRACEFD; read back when
// it goes silent, to say what it waits on); and lists the directory
// afterwards.
const wrapperScript = `set -o pipefail
dir=$OC_RECOVER_DIR
script=/usr/local/bin/cluster-backup.sh
if [ ! -x "$script" ]; then
  echo "oc-recover: $script does not exist on this host: is it an OpenShift 4.4 or later control-plane node with a running etcd pod?" >&2
  exit 127
fi
mkdir -p -- "$OC_RECOVER_ROOT" || exit 1
if ! mkdir -m 0700 -- "$dir"; then
  echo "oc-recover: $dir already exists; it is not this run's, so it is left alone" >&2
  exit 73
fi
echo "oc-recover: created $dir"
exec 9<"$OC_RECOVER_ROOT"
if ! flock -n 9; then
  echo "oc-recover: another oc-recover backup is running the backup script on this host; waiting for it to finish (up to ${OC_RECOVER_LOCK_WAIT}s)"
  waited=0
  until flock -w "$OC_RECOVER_LOCK_TICK" 9; do
    waited=$((waited + OC_RECOVER_LOCK_TICK))
    if [ "$waited" -ge "$OC_RECOVER_LOCK_WAIT" ]; then
      echo "oc-recover: another oc-recover backup has been running the backup script on this host for ${waited}s; giving up" >&2
      exit 75
    fi
    echo "oc-recover: still waiting for the other backup's script (${waited}s)"
  done
fi
args=()
if [ "$OC_RECOVER_FORCE" = 1 ] && grep -q -e '__POSSIBLY_DIRTY__' "$script"; then
  args=(--force)
fi
echo "oc-recover: running $script${args[*]:+ ${args[*]}} $dir"
echo "oc-recover: script output begins"
BASH_XTRACEFD=8 bash -x "$script" "${args[@]}" "$dir" 8>"$dir.trace"
rc=$?
echo "oc-recover: script exited $rc"
rm -f -- "$dir.trace"
ls -1 "$dir" 2>/dev/null | sed 's/^/oc-recover: file /'
exit $rc`

// scriptRun is what one run of the host script said and left.
type scriptRun struct {
	snapshot, resources string
	// forced: the script was given --force.
	forced bool
}

// runHostScript runs the backup script into hostDir and returns the names
// of the two files it wrote. A script that prints nothing for silence is
// stopped and reported with the command it was running.
func runHostScript(ctx context.Context, s debugnode.Runner, hostDir string, cl *Cluster, silence time.Duration, p Progress) (scriptRun, error) {
	envs := map[string]string{"OC_RECOVER_DIR": hostDir, "OC_RECOVER_ROOT": hostBackupRoot,
		"OC_RECOVER_LOCK_WAIT": fmt.Sprint(int(silence.Seconds())), "OC_RECOVER_LOCK_TICK": fmt.Sprint(lockTick(silence))}
	if cl.Dirty {
		envs["OC_RECOVER_FORCE"] = "1"
	}
	for k, v := range cl.ProxyEnv {
		envs[k] = v
		envs[strings.ToLower(k)] = v
	}
	var (
		output   bytes.Buffer
		inScript bool
		own      []string // the script's own lines
		last     atomic.Int64
	)
	last.Store(time.Now().UnixNano())
	lines := &lineWriter{emit: func(line string) {
		switch {
		case line == scriptBegins:
			inScript = true
		case strings.HasPrefix(line, scriptEnds):
			inScript = false
		case strings.HasPrefix(line, fileLine):
		default:
			if inScript {
				own = append(own, line)
			}
			p.HostOutput(line)
		}
	}}
	p.Step("Running the backup script on the host")
	// stdout and stderr arrive on two goroutines; one lock keeps lines whole.
	both := &lockedWriter{w: io.MultiWriter(&output, lines, activity{&last})}
	hostCtx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	go watchSilence(hostCtx, &last, silence, stop)
	code, err := s.Host(hostCtx, wrapperScript, envs, both, both)
	lines.flush()
	if context.Cause(hostCtx) == errSilent && ctx.Err() == nil {
		return scriptRun{}, silentError(ctx, s, hostDir, silence, own)
	}
	if err != nil {
		return scriptRun{}, err
	}
	var run scriptRun
	for _, line := range strings.Split(output.String(), "\n") {
		if rest, ok := strings.CutPrefix(line, wrapperPrefix+"running "); ok {
			run.forced = strings.Contains(rest, " --force ")
		}
		if name, ok := strings.CutPrefix(line, fileLine); ok {
			switch {
			case snapshotName.MatchString(name):
				run.snapshot = name
			case resourcesName.MatchString(name):
				run.resources = name
			}
		}
	}
	if code == 73 {
		return scriptRun{}, fmt.Errorf("%w: %s on %s; its output:\n%s", errDirExists, hostDir, s.Node(), hostOutput(output.String()))
	}
	if code != 0 {
		return scriptRun{}, scriptFailure(s.Node(), code, own, output.String())
	}
	// The script must itself have said where the snapshot went and that
	// both files are saved: a script that printed nothing (or a listing of
	// files some other run left) did not do what it was asked.
	saved := wrapperPrefix // never a line of the script's own
	for _, l := range own {
		if strings.Contains(l, "successfully saved to "+hostDir) {
			saved = l
		}
	}
	if run.snapshot == "" || run.resources == "" || saved == wrapperPrefix || !mentions(own, run.snapshot) {
		return scriptRun{}, fmt.Errorf("the backup script on %s exited 0 but did not itself report a snapshot_<ts>.db and a static_kuberesources_<ts>.tar.gz saved to %s (it must print the snapshot's path and \"snapshot db and kube resources are successfully saved to %s\"); its output:\n%s",
			s.Node(), hostDir, hostDir, hostOutput(output.String()))
	}
	return run, nil
}

func mentions(lines []string, s string) bool {
	for _, l := range lines {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

// scriptFailure explains a failed script, in the plugin's terms where the
// script's own advice would mislead (it tells the user to "Pass the --force
// flag", a flag of the script, not of this command).
func scriptFailure(node string, code int, own []string, output string) error {
	text := strings.Join(own, "\n")
	why := ""
	switch {
	case code == 75:
		why = "\nAnother oc-recover backup still runs the backup script on " + node + "; try again when it is done, or choose another node with --node."
	case strings.Contains(text, "operator is progressing"):
		why = "\nA rollout began after the pre-flight check found none. Run the backup again once it is finished, or with --force to take it now (marked __POSSIBLY_DIRTY__)."
	case strings.Contains(text, "Could not find the status of the"), strings.Contains(text, "Valid kubeconfig is not found"):
		why = "\nThe script reads the cluster operators through " + node + "'s own kube-apiserver (localhost.kubeconfig), which did not answer. Choose another control-plane node with --node, or pass --force to skip the script's check (the backup is then marked __POSSIBLY_DIRTY__)."
	}
	return fmt.Errorf("the backup script on %s failed (exit %d); its output:\n%s%s", node, code, hostOutput(output), why)
}

// silentError reports a script that went silent: how long, its last lines,
// and the command it was running, read from its trace on the host. The
// script's processes are ended (matched by the run's directory, which only
// this run uses; the [o] keeps pkill from matching its own command line).
func silentError(ctx context.Context, s debugnode.Runner, hostDir string, silence time.Duration, own []string) error {
	bg := context.WithoutCancel(ctx)
	var trace bytes.Buffer
	readCtx, cancel := context.WithTimeout(bg, 30*time.Second)
	_, _ = s.Host(readCtx, "tail -n 3 -- "+debugnode.ShellQuote(hostDir+".trace"), nil, &trace, io.Discard)
	cancel()
	killCtx, cancel := context.WithTimeout(bg, 30*time.Second)
	base := path.Base(hostDir)
	_, _ = s.Host(killCtx, "pkill -TERM -f -- "+debugnode.ShellQuote("["+base[:1]+"]"+base[1:]), nil, io.Discard, io.Discard)
	cancel()
	waiting := "(its trace could not be read)"
	if t := strings.TrimSpace(trace.String()); t != "" {
		tl := strings.Split(t, "\n")
		waiting = strings.TrimSpace(strings.TrimLeft(tl[len(tl)-1], "+"))
	}
	lastLine := "(none)"
	if len(own) > 0 {
		lastLine = own[len(own)-1]
	}
	return fmt.Errorf("the backup script on %s printed nothing for %s and was stopped.\nIt was waiting on: %s\nIts last line: %s\n"+
		"A command that waits this long usually waits on a server that does not answer: the node's etcd member or its own kube-apiserver. "+
		"Check them, choose another control-plane node with --node, or allow more time with --silence-timeout",
		s.Node(), silence, waiting, lastLine)
}

// lockTick is how often, in seconds, a run waiting for the host lock says
// so: often enough that the wait never looks like silence.
func lockTick(silence time.Duration) int {
	t := int(silence.Seconds() / 3)
	if t < 1 {
		t = 1
	}
	if t > 10 {
		t = 10
	}
	return t
}

// activity records when the host last printed anything.
type activity struct{ last *atomic.Int64 }

func (a activity) Write(p []byte) (int, error) {
	a.last.Store(time.Now().UnixNano())
	return len(p), nil
}

// watchSilence cancels with errSilent once nothing was printed for silence.
func watchSilence(ctx context.Context, last *atomic.Int64, silence time.Duration, stop context.CancelCauseFunc) {
	tick := silence / 20
	if tick < 100*time.Millisecond {
		tick = 100 * time.Millisecond
	}
	if tick > 5*time.Second {
		tick = 5 * time.Second
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if time.Since(time.Unix(0, last.Load())) >= silence {
				stop(errSilent)
				return
			}
		}
	}
}

func hostOutput(s string) string {
	var keep []string
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		if !strings.HasPrefix(l, fileLine) && l != scriptBegins && !strings.HasPrefix(l, scriptEnds) {
			keep = append(keep, "  | "+l)
		}
	}
	return strings.Join(keep, "\n")
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// lineWriter splits a stream into lines for emit.
type lineWriter struct {
	buf  []byte
	emit func(string)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		w.emit(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
}

func (w *lineWriter) flush() {
	if len(w.buf) > 0 {
		w.emit(string(w.buf))
		w.buf = nil
	}
}
