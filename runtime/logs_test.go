package runtime

import (
	"bufio"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
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
		c := newCollector(dir, 1<<40, 1, slog.New(slog.NewTextHandler(t.Output(), nil)))
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
		noPunch = noPunch || c.noPunch
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
