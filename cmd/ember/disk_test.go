//go:build integration

package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emberfaas/ember/api/wire"
	"github.com/emberfaas/ember/client"
)

// TestFullStateDir fills the state dir — a 64 MiB tmpfs of the test's
// own — while a function writes 2 MB/s to stdout and requests that log a
// line each keep coming. The function must keep answering every request
// while it is full (the shim's output is on the run dir, and the
// collector drops lines instead of stalling), writes must fail with 507
// naming the state dir while reads go on, dropped lines must show in
// status, the daemon log and /metrics, nothing .tmp may be left, and
// everything must recover once the filler is gone.
func TestFullStateDir(t *testing.T) {
	e := setup(t)
	state, err := os.MkdirTemp("", "ember-full-")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64m,mode=0700", "tmpfs", state).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	// Registered before the daemon's teardown, so it runs after it.
	t.Cleanup(func() {
		if out, err := exec.Command("umount", state).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", state, err, out)
			return
		}
		os.Remove(state)
	})
	d := newDaemon(t, e, "--state-dir", state, "--log-max-size", "4194304")
	d.mustEmber("deploy", "spam", "--image", e.echo, "--env", "LOG_SPAM=2000000")

	// The load: requests that each write a line to the function's
	// stdout, so a stalled pipe shows as a stalled request. The client's
	// timeout only guards against a hang; that requests keep completing
	// while the disk is full is what the test checks (full counts them).
	hc := &http.Client{Timeout: time.Minute}
	var (
		stop       = make(chan struct{})
		wg         sync.WaitGroup
		sent, fail atomic.Int64
		isFull     atomic.Bool  // from the fill until the filler is gone
		full       atomic.Int64 // requests that began and ended while full
		mu         sync.Mutex   // guards below
		slowest    time.Duration
		failures   []string
	)
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
				start := time.Now()
				began := isFull.Load()
				resp, err := hc.Get(d.url(fmt.Sprintf("/function/spam/_/log?line=req-%d-%d", w, i)))
				took := time.Since(start)
				sent.Add(1)
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err == nil && began && isFull.Load() {
					full.Add(1)
				}
				mu.Lock()
				slowest = max(slowest, took)
				if err != nil {
					fail.Add(1)
					failures = append(failures, fmt.Sprintf("after %s: %v", took, err))
				}
				mu.Unlock()
			}
		}()
	}
	defer func() {
		close(stop)
		wg.Wait()
	}()

	hasLine := func(want string) bool {
		found := false
		err := d.client.Logs(t.Context(), "spam", client.LogOptions{Tail: 2000}, func(m wire.LogMessage) error {
			found = found || strings.Contains(m.Text, want)
			return nil
		})
		return err == nil && found
	}
	waitFor(t, 20*time.Second, "spam lines in the function's log", func() bool { return hasLine("spam ") })

	// Fill the tmpfs, then keep it full: the collector's rotation frees
	// a log file now and then, as other writers would take the room.
	filler := filepath.Join(state, "filler")
	fill := func() int64 {
		f, err := os.OpenFile(filler, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return 0
		}
		defer f.Close()
		chunk := make([]byte, 64<<10)
		var n int64
		for {
			w, err := f.Write(chunk)
			n += int64(w)
			if err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Errorf("fill: %v", err)
				}
				return n
			}
		}
	}
	isFull.Store(true)
	filled := fill()
	t.Logf("filled the state dir with %d MiB", filled>>20)
	stopFill := make(chan struct{})
	fillDone := make(chan struct{})
	var stopFilling sync.Once
	endFill := func() {
		stopFilling.Do(func() { close(stopFill) })
		<-fillDone
	}
	// Also when the test fails early: it must stop before the tmpfs is
	// unmounted, or it would fill the disk under it.
	t.Cleanup(endFill)
	go func() {
		defer close(fillDone)
		for {
			select {
			case <-stopFill:
				return
			case <-time.After(50 * time.Millisecond):
				fill()
			}
		}
	}()
	fullSince := time.Now()

	var st wire.SystemStatus
	waitFor(t, 20*time.Second, "status to report dropped lines of spam", func() bool {
		st, err = d.client.Status(t.Context())
		return err == nil && st.LogsDropped != nil && st.LogsDropped.Dropping && st.LogsDropped.ByFunction["spam"] > 0
	})

	// Writes fail with 507 and say why; reads keep working.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	wantMsg := "state dir " + state + " is full"
	for what, err := range map[string]error{
		"deploy":        d.client.Deploy(ctx, wire.FunctionDeployment{Service: "other", Image: e.echo}, 0),
		"secret create": d.client.CreateSecret(ctx, "db", []byte("pw")),
		"scale":         d.client.Scale(ctx, "spam", 2),
	} {
		var se *client.StatusError
		if !errors.As(err, &se) || se.Code != http.StatusInsufficientStorage || !strings.Contains(se.Message, wantMsg) {
			t.Errorf("%s on a full state dir: %v, want 507 saying %q", what, err, wantMsg)
		} else {
			t.Logf("%s: %d %s", what, se.Code, se.Message)
		}
	}
	if fns, err := d.client.List(ctx); err != nil || len(fns) != 1 {
		t.Errorf("list on a full state dir: %v, %d functions, want 1", err, len(fns))
	}
	out := d.mustEmber("status")
	if !strings.Contains(out, "Logs dropped:") || !strings.Contains(out, "spam ") {
		t.Errorf("ember status does not show dropped logs:\n%s", out)
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "Logs dropped:") {
			t.Logf("ember status: %s", l)
		}
	}
	metrics, _, err := get(d.url("/metrics"))
	if err != nil || !strings.Contains(metrics, `ember_log_lines_dropped_total{function_name="spam"}`) {
		t.Errorf("/metrics lacks ember_log_lines_dropped_total for spam (%v)", err)
	}
	// Stay full under load until requests that began on the full disk
	// have kept completing: a stalled pipe would stop them all.
	const fullRequests = 100
	waitFor(t, time.Minute, fmt.Sprintf("%d requests begun and answered on the full disk", fullRequests), func() bool {
		return full.Load() >= fullRequests
	})
	var tmps []string
	filepath.WalkDir(state, func(p string, de fs.DirEntry, err error) error {
		if err == nil && (strings.HasSuffix(p, ".tmp") || strings.HasSuffix(p, "_tmp")) {
			tmps = append(tmps, p)
		}
		return nil
	})
	if len(tmps) > 0 {
		t.Errorf("temporary files left in the state dir: %q", tmps)
	}
	fullFor := time.Since(fullSince)

	// Room again: logs and writes recover.
	endFill()
	isFull.Store(false)
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := d.client.CreateSecret(ctx, "db", []byte("pw")); err != nil {
		t.Errorf("secret create after the disk has room: %v", err)
	}
	if err := d.client.Deploy(ctx, wire.FunctionDeployment{Service: "other", Image: e.echo}, 30*time.Second); err != nil {
		t.Errorf("deploy after the disk has room: %v", err)
	}
	if _, code, err := get(d.url("/function/spam/_/log?line=after-the-disk-had-room")); err != nil || code != http.StatusOK {
		t.Fatalf("log a line after the disk had room: %d, %v", code, err)
	}
	waitFor(t, 20*time.Second, "the function's log to take lines again", func() bool { return hasLine("after-the-disk-had-room") })
	st, err = d.client.Status(ctx)
	if err != nil || st.LogsDropped == nil || st.LogsDropped.Dropping {
		t.Errorf("status after recovery: %+v, %v; want dropped lines counted and not dropping now", st.LogsDropped, err)
	}
	close(stop)
	wg.Wait()
	stop = make(chan struct{}) // for the deferred close

	episodes := strings.Count(d.logs.String(), "dropping lines until it works again")
	mu.Lock()
	defer mu.Unlock()
	t.Logf("full for %s: %d requests (%d begun and answered while full), %d failed, slowest %s; dropped %d lines (%d KiB) in %d episodes",
		fullFor.Round(time.Millisecond), sent.Load(), full.Load(), fail.Load(), slowest.Round(time.Millisecond),
		st.LogsDropped.Lines, st.LogsDropped.Bytes>>10, episodes)
	if fail.Load() > 0 {
		t.Errorf("%d of %d requests failed: %q", fail.Load(), sent.Load(), failures[:min(len(failures), 5)])
	}
	if episodes == 0 {
		t.Errorf("the daemon log never said lines are dropped")
	}
}

func waitFor(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s after %s", what, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
