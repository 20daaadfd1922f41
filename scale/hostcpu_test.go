package scale

import (
	"slices"
	"testing"
	"time"
)

// The brake reads the stall share over its window from the counters'
// deltas, not a kernel average that lags by 10s.
func TestHostCPU(t *testing.T) {
	now := time.Unix(0, 0)
	var stall uint64
	var busy, total uint64
	for _, psi := range []bool{true, false} {
		h := &hostCPU{window: 3 * time.Second, threshold: 0.5, psi: psi, now: func() time.Time { return now },
			readPSI:  func() (uint64, bool) { return stall, true },
			readStat: func() (uint64, uint64, bool) { return busy, total, true }}
		step := func(d time.Duration, share float64) bool {
			now = now.Add(d)
			stall += uint64(share * float64(d.Microseconds()))
			total += 200 * uint64(d/time.Second) // 2 cores at 100 jiffies/s
			busy += uint64(share * 200 * float64(d/time.Second))
			return h.saturated()
		}
		if step(0, 0) {
			t.Errorf("psi=%v: saturated with one reading", psi)
		}
		for i := range 3 {
			if step(time.Second, 0.2) {
				t.Errorf("psi=%v: saturated at 20%% after %ds", psi, i+1)
			}
		}
		// The window turns once its span is mostly saturated.
		var got []bool
		for range 4 {
			got = append(got, step(time.Second, 1))
		}
		// PSI's threshold is 0.5, /proc/stat's 0.9 busy.
		want := []bool{false, true, true, true}
		if !psi {
			want = []bool{false, false, true, true}
		}
		if !slices.Equal(got, want) {
			t.Errorf("psi=%v: at 100%% for 1..4s saturated = %v, want %v", psi, got, want)
		}
		// After a long sleep, old readings say nothing.
		if step(time.Minute, 0) {
			t.Errorf("psi=%v: saturated after a minute asleep", psi)
		}
	}
}

// The real files parse on this host: PSI if the kernel has it, /proc/stat
// always.
func TestHostCPUFiles(t *testing.T) {
	if busy, total, ok := readStat(); !ok || total == 0 || busy > total {
		t.Errorf("readStat() = %d, %d, %v", busy, total, ok)
	}
	if _, ok := readPSI(); !ok {
		t.Log("no /proc/pressure/cpu here: the brake reads /proc/stat")
	}
}
