package runtime

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

// An exit with SIGKILL's code waits a moment for the OOM event that may
// trail it, and no longer than the event takes to come.
func TestExitWaitsForTrailingOOM(t *testing.T) {
	for _, tc := range []struct {
		name     string
		code     uint32
		before   bool          // the OOM event came before the exit
		after    time.Duration // the OOM event comes this long after the exit; 0: none
		cancel   time.Duration // the wait's context ends this long after the exit; 0: never
		wantOOM  bool
		wantTook time.Duration
	}{
		{name: "event first", code: 137, before: true, wantOOM: true},
		{name: "event trails", code: 137, after: 30 * time.Millisecond, wantOOM: true, wantTook: 30 * time.Millisecond},
		{name: "no event", code: 137, wantTook: oomTrail},
		{name: "event too late", code: 137, after: 2 * oomTrail, wantTook: oomTrail},
		{name: "context ends", code: 137, cancel: 10 * time.Millisecond, wantTook: 10 * time.Millisecond},
		{name: "not killed", code: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := &Runtime{ooms: map[string]time.Time{}}
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				if tc.before {
					r.recordOOM("a")
				}
				// Another container's OOM wakes the wait but is not ours.
				time.AfterFunc(5*time.Millisecond, func() { r.recordOOM("b") })
				if tc.after > 0 {
					time.AfterFunc(tc.after, func() { r.recordOOM("a") })
				}
				if tc.cancel > 0 {
					time.AfterFunc(tc.cancel, cancel)
				}
				start := time.Now()
				ex := r.exit(ctx, "a", tc.code, start)
				if took := time.Since(start); took != tc.wantTook {
					t.Errorf("exit took %s, want %s", took, tc.wantTook)
				}
				if ex.OOMKilled != tc.wantOOM || ex.Code != tc.code {
					t.Errorf("exit = %+v, want code %d, OOMKilled %v", ex, tc.code, tc.wantOOM)
				}
				time.Sleep(time.Second) // let the timers fire inside the bubble
			})
		})
	}
}
