// Package progress shows long-running work to a person: a progress bar with
// bytes, rate and ETA for downloads on a terminal, and plain lines elsewhere
// (CI, pipes). It implements backup.Progress.
package progress

import (
	"fmt"
	"github.com/oc-recover/oc-recover/pkg/backup"
	"io"
	"time"

	"github.com/schollz/progressbar/v3"
)

// Lines reports steps, host output and transfers to out.
type Lines struct {
	out      io.Writer
	terminal bool
	bar      *progressbar.ProgressBar
	barName  string
	// plain mode: the last quarter reported, per file
	lastQuarter map[string]int64
	started     map[string]time.Time
}

// New returns a Lines writing to out; terminal selects the progress bar.
func New(out io.Writer, terminal bool) *Lines {
	return &Lines{out: out, terminal: terminal, lastQuarter: map[string]int64{}, started: map[string]time.Time{}}
}

// Step reports one step.
func (p *Lines) Step(format string, args ...any) {
	p.finishBar()
	fmt.Fprintf(p.out, format+"\n", args...)
}

// HostOutput reports one line a host command printed.
func (p *Lines) HostOutput(line string) {
	p.finishBar()
	fmt.Fprintf(p.out, "  | %s\n", line)
}

// Transfer reports a download's bytes; done == total when it ends.
func (p *Lines) Transfer(name string, done, total int64) {
	p.transfer("Downloading", "Downloaded", name, done, total)
}

// Upload reports an upload's bytes; done == total when it ends.
func (p *Lines) Upload(name string, done, total int64) {
	p.transfer("Uploading", "Uploaded", name, done, total)
}

func (p *Lines) transfer(verb, past, name string, done, total int64) {
	if _, ok := p.started[name]; !ok {
		p.started[name] = time.Now()
	}
	if p.terminal {
		if p.bar == nil || p.barName != name {
			p.finishBar()
			p.bar = progressbar.NewOptions64(total,
				progressbar.OptionSetWriter(p.out),
				progressbar.OptionSetDescription(verb+" "+name),
				progressbar.OptionShowBytes(true),
				progressbar.OptionShowCount(),
				progressbar.OptionSetPredictTime(true),
				progressbar.OptionThrottle(100*time.Millisecond),
				progressbar.OptionClearOnFinish(),
			)
			p.barName = name
		}
		_ = p.bar.Set64(done)
	} else if total > 0 {
		quarter := done * 4 / total
		if quarter > p.lastQuarter[name] || done == total && p.lastQuarter[name] < 4 {
			p.lastQuarter[name] = quarter
			fmt.Fprintf(p.out, "%s %s: %s of %s (%d%%)\n", verb, name, HumanBytes(done), HumanBytes(total), done*100/total)
		}
	}
	if done == total {
		p.finishBar()
		elapsed := time.Since(p.started[name])
		fmt.Fprintf(p.out, "%s %s: %s in %s (%s/s)\n", past, name, HumanBytes(total), elapsed.Round(10*time.Millisecond), HumanBytes(int64(float64(total)/max(elapsed.Seconds(), 0.001))))
	}
}

func (p *Lines) finishBar() {
	if p.bar != nil {
		_ = p.bar.Finish()
		p.bar = nil
		p.barName = ""
	}
}

// HumanBytes writes n in binary units (1.5 MiB), as the domain packages'
// messages do (backup.HumanBytes).
func HumanBytes(n int64) string { return backup.HumanBytes(n) }
