package scale

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"time"
)

// hostCPU tells whether the host's CPU is saturated, from readings it
// keeps over a window. It prefers pressure stall information, the share
// of time runnable tasks waited for a CPU: that is what another replica
// would add to. Kernels without PSI (or with it off) give only the busy
// share from /proc/stat, a coarser sign: a host can be busy and still
// have room for work that waits on I/O.
type hostCPU struct {
	window    time.Duration
	threshold float64 // PSI share
	psi       bool
	readings  []cpuReading
	now       func() time.Time
	readPSI   func() (stallUs uint64, ok bool)
	readStat  func() (busy, total uint64, ok bool)
}

type cpuReading struct {
	at          time.Time
	stall       uint64 // PSI "some" total, µs
	busy, total uint64 // /proc/stat jiffies
}

// statBusy is the busy share from /proc/stat that counts as saturated.
const statBusy = 0.9

func newHostCPU(window time.Duration, threshold float64) *hostCPU {
	h := &hostCPU{window: window, threshold: threshold, now: time.Now, readPSI: readPSI, readStat: readStat}
	_, h.psi = h.readPSI()
	return h
}

// saturated takes a reading and reports whether the readings over the
// window show saturation. With less than 100ms of readings it reports
// false: the autoscaler was asleep, so nothing busy ran before.
func (h *hostCPU) saturated() bool {
	now := h.now()
	r := cpuReading{at: now}
	if h.psi {
		stall, ok := h.readPSI()
		if !ok {
			return false
		}
		r.stall = stall
	} else {
		busy, total, ok := h.readStat()
		if !ok {
			return false
		}
		r.busy, r.total = busy, total
	}
	h.readings = append(h.readings, r)
	// Keep the newest reading at or before the window's start, so the
	// span covers the whole window once it can.
	i := 0
	for i+1 < len(h.readings) && !h.readings[i+1].at.After(now.Add(-h.window)) {
		i++
	}
	h.readings = append(h.readings[:0], h.readings[i:]...)
	first := h.readings[0]
	// A reading older than two windows is from before a sleep: the load
	// then says nothing about now.
	if now.Sub(first.at) > 2*h.window {
		h.readings = append(h.readings[:0], r)
		return false
	}
	span := now.Sub(first.at)
	if span < 100*time.Millisecond {
		return false
	}
	if h.psi {
		return float64(r.stall-first.stall)/float64(span.Microseconds()) >= h.threshold
	}
	if r.total <= first.total {
		return false
	}
	return float64(r.busy-first.busy)/float64(r.total-first.total) >= statBusy
}

// readPSI returns the "some" stall total of /proc/pressure/cpu.
func readPSI() (uint64, bool) {
	b, err := os.ReadFile("/proc/pressure/cpu")
	if err != nil {
		return 0, false
	}
	for line := range strings.Lines(string(b)) {
		kind, rest, _ := strings.Cut(strings.TrimSpace(line), " ")
		if kind != "some" {
			continue
		}
		for _, f := range strings.Fields(rest) {
			if v, ok := strings.CutPrefix(f, "total="); ok {
				n, err := strconv.ParseUint(v, 10, 64)
				return n, err == nil
			}
		}
	}
	return 0, false
}

// readStat returns the host's busy and total jiffies from /proc/stat's
// cpu line; idle and iowait are not busy.
func readStat() (busy, total uint64, ok bool) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return 0, 0, false
	}
	fields := strings.Fields(sc.Text())
	if len(fields) < 6 || fields[0] != "cpu" {
		return 0, 0, false
	}
	var idle uint64
	for i, v := range fields[1:] {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, 0, false
		}
		// guest and guest_nice are already in user and nice.
		if i >= 8 {
			break
		}
		total += n
		if i == 3 || i == 4 {
			idle += n
		}
	}
	return total - idle, total, true
}
