package scale_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/emberfaas/ember/function"
	"github.com/emberfaas/ember/scale"
)

// waitReady runs WaitReady in the background; the channel gets its result
// and when it came.
func (e *env) waitReady(ctx context.Context, name string) <-chan waitResult {
	out := make(chan waitResult, 1)
	go func() {
		err := e.c.WaitReady(ctx, name)
		out <- waitResult{err, time.Now()}
	}()
	return out
}

type waitResult struct {
	err error
	at  time.Time
}

// WaitReady follows the function's state as it changes, not on a clock:
// it answers at the very moment the answer is known.
func TestWaitReadyAnswersOnChange(t *testing.T) {
	t.Run("removed", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			e := newEnv(t, scale.Config{})
			e.rt.setNewLock(false) // never ready
			e.start()
			e.deploy(spec("fn", "fn:1"))
			res := e.waitReady(t.Context(), "fn")
			time.Sleep(3*time.Second + 7*time.Millisecond)
			synctest.Wait()
			at := time.Now()
			go e.c.Remove(t.Context(), "fn")
			synctest.Wait()
			select {
			case r := <-res:
				if !errors.Is(r.err, function.ErrNotFound) {
					t.Errorf("WaitReady = %v, want ErrNotFound", r.err)
				}
				if d := r.at.Sub(at); d != 0 {
					t.Errorf("WaitReady answered %s after Remove, want at once", d)
				}
			default:
				t.Fatal("WaitReady still waiting after Remove")
			}
		})
	})
	t.Run("crash-looping", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			e := newEnv(t, scale.Config{})
			e.rt.setNewLock(false) // never ready
			e.start()
			e.deploy(spec("fn", "fn:1"))
			synctest.Wait()
			res := e.waitReady(t.Context(), "fn")
			id := e.status("fn").Replicas[0].ID
			// Each exit comes well after the restart its predecessor's
			// backoff (1s, then 2s) set, at an odd moment.
			var at time.Time
			for range 3 {
				time.Sleep(2*time.Second + 513*time.Millisecond)
				synctest.Wait()
				select {
				case r := <-res:
					t.Fatalf("WaitReady = %v before the crash loop showed", r.err)
				default:
				}
				at = time.Now()
				e.rt.exit(id, 3)
			}
			synctest.Wait()
			select {
			case r := <-res:
				if r.err == nil || !strings.Contains(r.err.Error(), "crash-looping") {
					t.Errorf("WaitReady = %v, want crash-looping", r.err)
				}
				if d := r.at.Sub(at); d != 0 {
					t.Errorf("WaitReady answered %s after the third exit, want at once", d)
				}
			default:
				t.Fatal("WaitReady still waiting after the third exit")
			}
		})
	})
}
