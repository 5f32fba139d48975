package box

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// What the host tools' stand-ins report of a host's hardware: its clock
// as chronyd tracks it (hosttools/chronyc) and its disk (hosttools/df).
// Both live in /run/box as shell assignments the stand-ins read.
const (
	chronydStateFile = "run/box/chronyd"
	diskStateFile    = "run/box/disk"

	// hostClockOffset is a healthy host's clock: 12 µs behind NTP time.
	hostClockOffset = -12345 * time.Nanosecond
	// hostDiskSize is a control-plane host's disk: 120 GiB, as the
	// installer's minimum for a control-plane machine.
	hostDiskSize = 120 << 30
	// hostDiskBase is what the operating system and the images take of
	// it, before what /var holds.
	hostDiskBase = 14 << 30
)

// writeHostState gives a new host a synchronised clock and a disk with
// room.
func writeHostState(root string) error {
	if err := writeChronyd(root, hostClockOffset); err != nil {
		return err
	}
	return writeDisk(root, "")
}

func writeChronyd(root string, offset time.Duration) error {
	return writeStateFile(filepath.Join(root, chronydStateFile),
		fmt.Sprintf("OFFSET=%s\nREFID=C0000201\nREFNAME=192.0.2.1\nSTRATUM=3\nLEAP=Normal\n", strconv.FormatFloat(offset.Seconds(), 'f', 9, 64)))
}

func writeDisk(root, free string) error {
	content := fmt.Sprintf("SIZE=%d\nBASE=%d\n", int64(hostDiskSize), int64(hostDiskBase))
	if free != "" {
		content += "FREE=" + free + "\n"
	}
	return writeStateFile(filepath.Join(root, diskStateFile), content)
}

// writeStateFile replaces path at once: a stand-in never reads half of it.
func writeStateFile(path, content string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := fmt.Sprintf("%s.%d.tmp", path, time.Now().UnixNano())
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// SkewClock is a host whose clock drifted offset from NTP time (positive:
// ahead) as chronyd tracks it, as when its time sources are unreachable;
// restore puts it back in sync.
func (b *Box) SkewClock(node string, offset time.Duration) (restore func() error, err error) {
	n := b.Node(node)
	if n == nil {
		return nil, fmt.Errorf("no node %q in the box", node)
	}
	if err := writeChronyd(n.Sandbox.Root, offset); err != nil {
		return nil, err
	}
	return func() error { return writeChronyd(n.Sandbox.Root, hostClockOffset) }, nil
}

// FillDisk is a host whose disk something filled until only freePercent
// of it is free, as df reports it; restore frees it again. Writes on the
// host still succeed: only what df reports changes.
func (b *Box) FillDisk(node string, freePercent float64) (restore func() error, err error) {
	n := b.Node(node)
	if n == nil {
		return nil, fmt.Errorf("no node %q in the box", node)
	}
	if freePercent < 0 || freePercent > 100 {
		return nil, fmt.Errorf("free percentage %v out of range", freePercent)
	}
	if err := writeDisk(n.Sandbox.Root, strconv.FormatFloat(freePercent, 'f', -1, 64)); err != nil {
		return nil, err
	}
	return func() error { return writeDisk(n.Sandbox.Root, "") }, nil
}
