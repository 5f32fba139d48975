package backup

import (
	"fmt"
	"io"
	"time"

	"github.com/schollz/progressbar/v3"
)

// progress shows a backup to a person: a progress bar with bytes, rate and
// ETA for downloads on a terminal, and plain lines elsewhere (CI, pipes).
type progress struct {
	out      io.Writer
	terminal bool
	bar      *progressbar.ProgressBar
	barName  string
	// plain mode: the last quarter reported, per file
	lastQuarter map[string]int64
	started     map[string]time.Time
}

func newProgress(out io.Writer, terminal bool) *progress {
	return &progress{out: out, terminal: terminal, lastQuarter: map[string]int64{}, started: map[string]time.Time{}}
}

func (p *progress) Step(format string, args ...any) {
	p.finishBar()
	fmt.Fprintf(p.out, format+"\n", args...)
}

func (p *progress) HostOutput(line string) {
	p.finishBar()
	fmt.Fprintf(p.out, "  | %s\n", line)
}

func (p *progress) Transfer(name string, done, total int64) {
	if _, ok := p.started[name]; !ok {
		p.started[name] = time.Now()
	}
	if p.terminal {
		if p.bar == nil || p.barName != name {
			p.finishBar()
			p.bar = progressbar.NewOptions64(total,
				progressbar.OptionSetWriter(p.out),
				progressbar.OptionSetDescription("Downloading "+name),
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
			fmt.Fprintf(p.out, "Downloading %s: %s of %s (%d%%)\n", name, humanBytes(done), humanBytes(total), done*100/total)
		}
	}
	if done == total {
		p.finishBar()
		elapsed := time.Since(p.started[name])
		fmt.Fprintf(p.out, "Downloaded %s: %s in %s (%s/s)\n", name, humanBytes(total), elapsed.Round(10*time.Millisecond), humanBytes(int64(float64(total)/max(elapsed.Seconds(), 0.001))))
	}
}

func (p *progress) finishBar() {
	if p.bar != nil {
		_ = p.bar.Finish()
		p.bar = nil
		p.barName = ""
	}
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
