package runtime

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestCollectWhileAppending: the shim appends to a raw file while the
// collector reads it and gives its space back, again and again; every line
// must reach the stamped log exactly once, in order. The collector is
// also replaced now and then, as a restarted daemon would be, to check
// that the saved offset neither skips nor repeats output.
func TestCollectWhileAppending(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "echo"), 0o700); err != nil {
		t.Fatal(err)
	}
	raw := filepath.Join(dir, "echo", "r1"+rawSuffix)
	w, err := os.OpenFile(raw, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	newC := func() *collector {
		c := newCollector([]string{dir}, dir, 1<<40, 1, slog.New(slog.NewTextHandler(t.Output(), nil)), newLogMetrics(nil))
		c.reclaimEvery = rawPunchAlign
		return c
	}
	const lines = 200_000
	done := make(chan error, 1)
	go func() {
		for i := range lines {
			line := "line " + strconv.Itoa(i) + "\n"
			var err error
			if i%7 == 3 {
				// A line in two writes, as the shim's copy may split one.
				if _, err = w.Write([]byte(line[:4])); err == nil {
					_, err = w.Write([]byte(line[4:]))
				}
			} else {
				_, err = w.Write([]byte(line))
			}
			if err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()

	c := newC()
	noPunch, punched := false, false
	for round, writing := 1, true; writing; round++ {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			writing = false // one more round collects the rest
		default:
		}
		c.collect(raw, time.Time{})
		punched = punched || c.reclaimed[raw] > 0
		noPunch = noPunch || c.noPunch[dir]
		if round%100 == 0 {
			c = newC() // a restarted daemon
		}
	}

	f, err := os.Open(filepath.Join(dir, "echo", "r1"+logSuffix))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	next := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		_, text, ok := strings.Cut(sc.Text(), " ")
		if want := "line " + strconv.Itoa(next); !ok || text != want {
			t.Fatalf("stamped line %d is %q, want %q", next, sc.Text(), want)
		}
		next++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if next != lines {
		t.Fatalf("stamped log has %d lines, want %d", next, lines)
	}

	st, err := os.Stat(raw)
	if err != nil {
		t.Fatal(err)
	}
	disk := st.Sys().(*syscall.Stat_t).Blocks * 512
	t.Logf("raw file: %d bytes, %d on disk; holes punched: %v", st.Size(), disk, punched)
	switch {
	case noPunch:
		t.Logf("this file system cannot punch holes: space not reclaimed")
	case !punched:
		t.Errorf("no hole punched in %d bytes", st.Size())
	case disk > st.Size()/2:
		t.Errorf("raw file of %d bytes takes %d on disk: holes not punched", st.Size(), disk)
	}

	// LogTail's reader still finds the last lines in the raw file.
	tail := tailFile(raw, 3)
	want := []string{fmt.Sprint("line ", lines-3), fmt.Sprint("line ", lines-2), fmt.Sprint("line ", lines-1)}
	if strings.Join(tail, "|") != strings.Join(want, "|") {
		t.Errorf("tail of the raw file: %q, want %q", tail, want)
	}
}

// TestTailFileSkipsHole: zeros read from a punched hole are no output.
func TestTailFileSkipsHole(t *testing.T) {
	p := filepath.Join(t.TempDir(), "r"+rawSuffix)
	data := append(make([]byte, tailWindow), "last words\nexit\n"...)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	got := tailFile(p, 5)
	if strings.Join(got, "|") != "last words|exit" {
		t.Errorf("tailFile = %q, want [last words exit]", got)
	}
}

// TestCollectDropsWhenAppendFails: with the state dir full, appending to
// the stamped log fails. The collector must still read the raw file, save
// its offset and punch its space back — the shim's file may never grow
// with the disk full — and count what it dropped, saying so once; when
// appends work again, lines are kept again.
func TestCollectDropsWhenAppendFails(t *testing.T) {
	run, state := t.TempDir(), t.TempDir()
	if err := os.MkdirAll(filepath.Join(run, "echo"), 0o700); err != nil {
		t.Fatal(err)
	}
	raw := filepath.Join(run, "echo", "r1"+rawSuffix)
	w, err := os.OpenFile(raw, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var logged bytes.Buffer
	c := newCollector([]string{run}, state, 1<<40, 1, slog.New(slog.NewTextHandler(&logged, nil)), newLogMetrics(nil))
	c.reclaimEvery = rawPunchAlign
	full := true
	c.writeLog = func(p string, data []byte) error {
		if full {
			return &os.PathError{Op: "write", Path: p, Err: syscall.ENOSPC}
		}
		return c.appendLog(p, data)
	}
	line := strings.Repeat("x", 99) + "\n"
	const batches, perBatch = 40, 500
	for range batches {
		if _, err := w.WriteString(strings.Repeat(line, perBatch)); err != nil {
			t.Fatal(err)
		}
		c.collect(raw, time.Time{})
	}

	const want = batches * perBatch
	if c.drops.Lines != want || c.drops.ByFunction["echo"] != want || !c.drops.Dropping {
		t.Errorf("drops = %+v, want %d lines of echo, dropping", c.drops, want)
	}
	if got := testutil.ToFloat64(c.metrics.lines.WithLabelValues("echo")); got != want {
		t.Errorf("ember_log_lines_dropped_total = %v, want %d", got, want)
	}
	if c.drops.Bytes <= want*100 {
		t.Errorf("dropped bytes %d, want more than the %d bytes of raw output (stamps are added)", c.drops.Bytes, want*100)
	}
	st, err := os.Stat(raw)
	if err != nil {
		t.Fatal(err)
	}
	if got := readOffset(filepath.Join(run, "echo", "r1"+offsetSuffix)); got != st.Size() {
		t.Errorf("saved offset %d, want the raw file's size %d: output was not read on", got, st.Size())
	}
	disk := st.Sys().(*syscall.Stat_t).Blocks * 512
	t.Logf("raw file: %d bytes, %d on disk; dropped %d lines, %d bytes", st.Size(), disk, c.drops.Lines, c.drops.Bytes)
	if !c.noPunch[run] && disk > 4*rawPunchAlign {
		t.Errorf("raw file of %d bytes takes %d on disk: its space was not given back while dropping", st.Size(), disk)
	}
	if _, err := os.Stat(filepath.Join(state, "echo", "r1"+logSuffix)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stamped log: %v, want none", err)
	}

	full = false
	if _, err := w.WriteString("back\n"); err != nil {
		t.Fatal(err)
	}
	c.collect(raw, time.Time{})
	data, err := os.ReadFile(filepath.Join(state, "echo", "r1"+logSuffix))
	if err != nil {
		t.Fatal(err)
	}
	if _, text, _ := strings.Cut(strings.TrimSpace(string(data)), " "); text != "back" {
		t.Errorf("stamped log after recovery: %q, want the one new line", data)
	}
	if c.drops.Dropping || c.drops.Lines != want {
		t.Errorf("drops after recovery = %+v, want not dropping, %d lines", c.drops, want)
	}
	if n := strings.Count(logged.String(), "dropping lines"); n != 1 {
		t.Errorf("said %d times that lines are dropped, want once per episode:\n%s", n, logged.String())
	}
	if n := strings.Count(logged.String(), "keeping function logs again"); n != 1 {
		t.Errorf("said %d times that logs are kept again, want once:\n%s", n, logged.String())
	}
}

func TestReplicaOfFile(t *testing.T) {
	for name, want := range map[string]string{
		"echo-1a2b3c4d.out":           "echo-1a2b3c4d",
		"echo-1a2b3c4d.off":           "echo-1a2b3c4d",
		"echo-1a2b3c4d.log":           "echo-1a2b3c4d",
		"echo-1a2b3c4d.log.2":         "echo-1a2b3c4d",
		"echo.staging-1a2b3c4d.log":   "echo.staging-1a2b3c4d",
		"echo.staging-1a2b3c4d.log.1": "echo.staging-1a2b3c4d",
		"echo.staging-1a2b3c4d.out":   "echo.staging-1a2b3c4d",
		"echo.log-1a2b3c4d.log":       "echo.log-1a2b3c4d",
		"echo.out-1a2b3c4d.log":       "echo.out-1a2b3c4d",
		"echo.offline-1a2b3c4d.off":   "echo.offline-1a2b3c4d",
		"echo.logs-1a2b3c4d.log.3":    "echo.logs-1a2b3c4d",
	} {
		if got := replicaOfFile(name); got != want {
			t.Errorf("replicaOfFile(%q) = %q, want %q", name, got, want)
		}
	}
}
