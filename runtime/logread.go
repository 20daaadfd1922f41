package runtime

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/emberfaas/ember/function"
)

// Logs streams a function's log lines, oldest first, to out; with Follow
// it then keeps streaming until ctx ends. It returns when done.
func (r *Runtime) Logs(ctx context.Context, fn string, q function.LogQuery, out func(function.LogLine) error) error {
	var sub *logSub
	if q.Follow {
		// Subscribe before reading the files, so nothing falls between.
		sub = &logSub{fn: fn, instance: q.Instance, ch: make(chan function.LogLine, 4096)}
		r.logs.mu.Lock()
		r.logs.subs[sub] = struct{}{}
		r.logs.mu.Unlock()
		defer func() {
			r.logs.mu.Lock()
			delete(r.logs.subs, sub)
			r.logs.mu.Unlock()
		}()
	}
	lines, err := r.readLogs(fn, q)
	if err != nil {
		return err
	}
	var last time.Time
	for _, l := range lines {
		if err := out(l); err != nil {
			return err
		}
		last = l.Time
	}
	if sub == nil {
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case l := <-sub.ch:
			if l.Time.Before(last) || (!q.Since.IsZero() && l.Time.Before(q.Since)) {
				continue // already sent from the files
			}
			if err := out(l); err != nil {
				return err
			}
		}
	}
}

func (r *Runtime) readLogs(fn string, q function.LogQuery) ([]function.LogLine, error) {
	dir := filepath.Join(logDir(r.cfg.StateDir), fn)
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("logs of %s: %w", fn, err)
	}
	var lines []function.LogLine
	for _, e := range ents {
		name := e.Name()
		id := replicaOfFile(name)
		rest := strings.TrimPrefix(name[len(id):], ".")
		if (rest != "log" && !strings.HasPrefix(rest, "log.")) || (q.Instance != "" && id != q.Instance) {
			continue
		}
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 0, 64<<10), maxLineBytes+64)
		for sc.Scan() {
			ts, text, ok := strings.Cut(sc.Text(), " ")
			if !ok {
				continue
			}
			t, err := time.Parse(time.RFC3339Nano, ts)
			if err != nil || (!q.Since.IsZero() && t.Before(q.Since)) {
				continue
			}
			lines = append(lines, function.LogLine{Time: t, Function: fn, Instance: id, Text: text})
		}
		f.Close()
	}
	slices.SortStableFunc(lines, func(a, b function.LogLine) int { return a.Time.Compare(b.Time) })
	if q.Tail > 0 && len(lines) > q.Tail {
		lines = lines[len(lines)-q.Tail:]
	}
	return lines, nil
}
