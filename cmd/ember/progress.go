package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/emberfaas/ember/api/wire"
	"github.com/emberfaas/ember/function"
)

// deployProgress shows a followed deploy: on a terminal the pull's layers
// are redrawn in place, as docker and nerdctl draw them; elsewhere (a log,
// a pipe) each step is one plain line.
type deployProgress struct {
	w    io.Writer
	tty  bool
	name string
	now  func() time.Time

	pullStart time.Time
	pull      *function.PullProgress
	drawn     int // lines of the last redraw, on a terminal
	waitStart time.Time
}

func newDeployProgress(w io.Writer, name string) *deployProgress {
	return &deployProgress{w: w, tty: isTerminal(w), name: name, now: time.Now}
}

// isTerminal reports whether w is a terminal that can redraw lines.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("TERM") == "dumb" {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

func (p *deployProgress) event(ev wire.DeployEvent) {
	now := p.now()
	switch ev.Stage {
	case wire.StagePull:
		if ev.Pull == nil {
			return
		}
		if p.pull == nil {
			p.pullStart = now
			if !p.tty {
				_, total := ev.Pull.Bytes()
				layers := "layers"
				if len(ev.Pull.Layers) == 1 {
					layers = "layer"
				}
				fmt.Fprintf(p.w, "Pulling %s: %d %s, %s\n", ev.Pull.Image, len(ev.Pull.Layers), layers, byteSize(float64(total)))
			}
		}
		p.pull = ev.Pull
		if p.tty {
			p.redraw(p.pullLines(now))
		}
	case wire.StageDeployed:
		if p.pull != nil {
			done, _ := p.pull.Bytes()
			took := now.Sub(p.pullStart)
			fmt.Fprintf(p.w, "Pulled %s: %s in %s (%s)\n", p.pull.Image, byteSize(float64(done)),
				took.Round(100*time.Millisecond), formatByteRate(done, took))
			p.drawn = 0
		}
		p.waitStart = now
	case wire.StageReady:
		fmt.Fprintf(p.w, "%s ready after %s.\n", p.name, now.Sub(p.waitStart).Round(100*time.Millisecond))
	}
}

// waiting says that the deploy now waits for a ready replica.
func (p *deployProgress) waiting() {
	fmt.Fprintf(p.w, "Waiting for a ready replica of %s...\n", p.name)
}

// pullLines is the pull's block: a line a layer, then the total and rate.
func (p *deployProgress) pullLines(now time.Time) []string {
	lines := []string{"Pulling " + p.pull.Image}
	for _, l := range p.pull.Layers {
		id := strings.TrimPrefix(l.Digest, "sha256:")
		id = id[:min(12, len(id))]
		state := fmt.Sprintf("%s / %s", byteSize(float64(l.Done)), byteSize(float64(l.Total)))
		switch {
		case l.Done >= l.Total:
			state = "done " + byteSize(float64(l.Total))
		case l.Done == 0:
			state = "waiting"
		}
		lines = append(lines, fmt.Sprintf("  %-12s  %s", id, state))
	}
	done, total := p.pull.Bytes()
	lines = append(lines, fmt.Sprintf("  %-12s  %s / %s  %s", "total", byteSize(float64(done)), byteSize(float64(total)),
		formatByteRate(done, now.Sub(p.pullStart))))
	return lines
}

// redraw replaces the lines drawn last time with lines.
func (p *deployProgress) redraw(lines []string) {
	var b strings.Builder
	if p.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", p.drawn)
	}
	for _, l := range lines {
		b.WriteString("\r\x1b[2K" + l + "\n")
	}
	p.drawn = len(lines)
	io.WriteString(p.w, b.String())
}

// formatByteRate renders bytes over d as "3.2 MiB/s".
func formatByteRate(bytes int64, d time.Duration) string {
	if d <= 0 || bytes <= 0 {
		return "0 B/s"
	}
	return byteSize(float64(bytes)/d.Seconds()) + "/s"
}
