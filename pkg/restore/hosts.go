package restore

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/oc-recover/oc-recover/pkg/debugnode"
)

// probeMarker starts every line the host probe reports.
const probeMarker = "oc-recover-probe"

// probeScript looks at a control-plane host as a restore will use it; it
// only reads. Each line is "<marker> <key> <value>".
func probeScript(files []string) string {
	var quoted []string
	for _, f := range files {
		quoted = append(quoted, debugnode.ShellQuote(f))
	}
	return `set +e
p() { printf '` + probeMarker + ` %s %s\n' "$1" "$2"; }
for f in ` + strings.Join(quoted, " ") + `; do [ -f "$f" ] && p file "$f"; done
p var-avail "$(df -B1 --output=avail /var 2>/dev/null | tail -n 1 | tr -d ' ')"
if [ -d ` + etcdDataDir + ` ]; then
  p etcd-size "$(du -sb ` + etcdDataDir + ` 2>/dev/null | cut -f1)"
  for e in $(ls -A ` + etcdDataDir + ` 2>/dev/null); do p etcd-entry "$e"; done
  mountpoint -q ` + etcdDataDir + ` 2>/dev/null && p etcd-mountpoint yes
fi
[ -d ` + etcdDataBackup + `/member ] && p etcd-backup-member "$(du -sb ` + etcdDataBackup + `/member 2>/dev/null | cut -f1)"
for d in ` + StateDir + `/*/; do [ -d "$d" ] && p staged "$(basename "$d")"; done
command -v systemd-run >/dev/null 2>&1 && p systemd-run "$(command -v systemd-run)"
p tmp-fs "$(stat -f -c %T /tmp 2>/dev/null)"
p clock "$(date -u +%s)"
exit 0
`
}

// HostProbe is what the probe found on one control-plane host.
type HostProbe struct {
	Node string `json:"node"`
	// Files are the operator's files present, of those asked for.
	Files []string `json:"files,omitempty"`
	// VarAvail is the free space on /var in bytes (-1: unknown).
	VarAvail int64 `json:"varAvailable"`
	// EtcdSize is what /var/lib/etcd holds, in bytes.
	EtcdSize int64 `json:"etcdSize"`
	// EtcdEntries are the names in /var/lib/etcd.
	EtcdEntries []string `json:"etcdEntries,omitempty"`
	// EtcdMountPoint: /var/lib/etcd is a file system of its own, so it is
	// emptied by renaming within it, not moved away.
	EtcdMountPoint bool `json:"etcdMountPoint,omitempty"`
	// EtcdBackupMember is the size of an existing /var/lib/etcd-backup/member
	// (-1: none), which cluster-restore.sh would delete.
	EtcdBackupMember int64 `json:"etcdBackupMember"`
	// Staged are earlier restores' directories under StateDir.
	Staged []string `json:"staged,omitempty"`
	// SystemdRun is where systemd-run is ("" when missing).
	SystemdRun string `json:"systemdRun,omitempty"`
	// TmpFS is the file system type of /tmp (tmpfs on RHCOS).
	TmpFS string `json:"tmpFS,omitempty"`
	// ClockSkew is the host's clock minus ours, as read.
	ClockSkew time.Duration `json:"clockSkew"`
	// Err: the probe did not run.
	Err error `json:"-"`
	// CleanupErr: its debug pod could not be removed.
	CleanupErr error `json:"-"`
}

// parseProbe reads the probe's lines; the clock is compared with now,
// when the output arrived.
func parseProbe(node, out string, now time.Time) HostProbe {
	h := HostProbe{Node: node, VarAvail: -1, EtcdBackupMember: -1}
	for _, line := range strings.Split(out, "\n") {
		f := strings.SplitN(line, " ", 3)
		if len(f) < 2 || f[0] != probeMarker {
			continue
		}
		value := ""
		if len(f) == 3 {
			value = strings.TrimSpace(f[2])
		}
		number := func() int64 {
			n, err := strconv.ParseInt(value, 10, 64)
			if err != nil {
				return -1
			}
			return n
		}
		switch f[1] {
		case "file":
			h.Files = append(h.Files, value)
		case "var-avail":
			h.VarAvail = number()
		case "etcd-size":
			h.EtcdSize = number()
		case "etcd-entry":
			h.EtcdEntries = append(h.EtcdEntries, value)
		case "etcd-mountpoint":
			h.EtcdMountPoint = true
		case "etcd-backup-member":
			h.EtcdBackupMember = number()
		case "staged":
			h.Staged = append(h.Staged, value)
		case "systemd-run":
			h.SystemdRun = value
		case "tmp-fs":
			h.TmpFS = value
		case "clock":
			if s := number(); s > 0 {
				h.ClockSkew = time.Unix(s, 0).Sub(now.Truncate(time.Second))
			}
		}
	}
	sort.Strings(h.EtcdEntries)
	return h
}

// probeTimeout bounds the probe on one host.
const probeTimeout = 2 * time.Minute

// probeHosts runs the probe on every node at once (a handful of
// control-plane hosts), each through a debug pod that is removed whatever
// happens.
func probeHosts(ctx context.Context, start debugnode.StartFunc, nodes []string, files map[string][]string) []HostProbe {
	out := make([]HostProbe, len(nodes))
	var wg sync.WaitGroup
	for i, node := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = probeHost(ctx, start, node, files[node])
		}()
	}
	wg.Wait()
	return out
}

func probeHost(ctx context.Context, start debugnode.StartFunc, node string, files []string) (h HostProbe) {
	run, err := start(ctx, node)
	if err != nil {
		return HostProbe{Node: node, Err: err}
	}
	defer func() {
		if err := run.Close(context.WithoutCancel(ctx)); err != nil {
			h.CleanupErr = err
		}
	}()
	sctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code, err := run.Host(sctx, probeScript(files), nil, &stdout, &stderr)
	switch {
	case err != nil:
		return HostProbe{Node: node, Err: err}
	case code != 0:
		return HostProbe{Node: node, Err: fmt.Errorf("the probe exited %d: %s", code, strings.TrimSpace(stderr.String()))}
	}
	return parseProbe(node, stdout.String(), time.Now())
}

// missing lists the files of want that the host lacks.
func (h HostProbe) missing(want []string) []string {
	have := map[string]bool{}
	for _, f := range h.Files {
		have[f] = true
	}
	var out []string
	for _, f := range want {
		if !have[f] {
			out = append(out, f)
		}
	}
	return out
}

// etcdExtras are the entries of /var/lib/etcd other than the member
// directory and revision.json, which the 4.18 to 4.21 cluster-restore.sh
// refuses after it stopped etcd, and the restore pod of earlier releases
// refuses by crash-looping; a restore moves them aside first.
func (h HostProbe) etcdExtras() []string {
	var out []string
	for _, e := range h.EtcdEntries {
		if e != "member" && e != "revision.json" {
			out = append(out, e)
		}
	}
	return out
}
