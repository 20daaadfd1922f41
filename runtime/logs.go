package runtime

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/emberfaas/ember/function"
)

// Logs: the shim writes each replica's stdout and stderr straight to a
// file (NAME.out) — no process of ours sits in between, and output keeps
// flowing while the daemon is down. The collector, one goroutine woken by
// inotify, stamps each new line with the time it saw it and appends it to
// NAME.log, which rotates at LogMaxSize into NAME.log.1. Its read offset
// is kept in NAME.off, so a restarted daemon neither loses nor repeats
// lines; lines written while it was down get the file's modification time.
// The disk space of what was read is given back by punching holes in the
// raw file (see reclaim), never by truncating it.

const (
	rawSuffix    = ".out"
	logSuffix    = ".log"
	offsetSuffix = ".off"
	// rawReclaimEvery is how much read output a raw file gathers before
	// its disk space is given back.
	rawReclaimEvery = 1 << 20
	// rawPunchAlign keeps holes to whole blocks of any common file system,
	// so that punching frees blocks rather than writing zeros.
	rawPunchAlign = 64 << 10
	maxLineBytes  = 64 << 10
	// tailWindow is how much of a file's end LogTail reads. That much read
	// output is left in a raw file, so a crashed process's last lines are
	// found there even after its space was reclaimed.
	tailWindow = 16 << 10
)

type collector struct {
	dir      string
	maxSize  int64
	maxFiles int
	log      *slog.Logger
	// reclaimEvery is rawReclaimEvery; tests make it small.
	reclaimEvery int64

	mu      sync.Mutex // guards below
	offsets map[string]int64
	partial map[string][]byte
	// reclaimed is, per raw file, up to where holes were punched by this
	// collector.
	reclaimed map[string]int64
	// noPunch is set once the file system refused to punch a hole: raw
	// files then keep their read output until their replica is removed.
	noPunch bool
	subs    map[*logSub]struct{}
}

type logSub struct {
	fn, instance string
	ch           chan function.LogLine
}

func newCollector(dir string, maxSize int64, maxFiles int, log *slog.Logger) *collector {
	return &collector{dir: dir, maxSize: maxSize, maxFiles: max(1, maxFiles), log: log, reclaimEvery: rawReclaimEvery,
		offsets: map[string]int64{}, partial: map[string][]byte{}, reclaimed: map[string]int64{}, subs: map[*logSub]struct{}{}}
}

// rawPath is the file the shim writes for a replica.
func (r *Runtime) rawPath(fn, id string) string {
	return filepath.Join(logDir(r.cfg.StateDir), fn, id+rawSuffix)
}

// runCollector watches the log tree until ctx ends.
func (c *collector) run(ctx context.Context) error {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return fmt.Errorf("inotify: %w", err)
	}
	f := os.NewFile(uintptr(fd), "inotify")
	go func() {
		<-ctx.Done()
		f.Close()
	}()
	watches := map[int32]string{}
	watch := func(dir string) {
		wd, err := unix.InotifyAddWatch(fd, dir, unix.IN_MODIFY|unix.IN_CREATE|unix.IN_MOVED_TO)
		if err == nil {
			watches[int32(wd)] = dir
		}
	}
	watch(c.dir)
	fns, _ := os.ReadDir(c.dir)
	for _, e := range fns {
		if e.IsDir() {
			watch(filepath.Join(c.dir, e.Name()))
		}
	}
	// Catch up on what was written while nobody watched.
	c.scanAll()
	buf := make([]byte, 64<<10)
	for {
		n, err := f.Read(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("inotify read: %w", err)
		}
		dirty := map[string]bool{}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := ""
			if ev.Len > 0 {
				name = strings.TrimRight(string(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+int(ev.Len)]), "\x00")
			}
			off += unix.SizeofInotifyEvent + int(ev.Len)
			dir, ok := watches[ev.Wd]
			if !ok || name == "" {
				continue
			}
			p := filepath.Join(dir, name)
			if ev.Mask&unix.IN_ISDIR != 0 && dir == c.dir {
				watch(p)
				c.scanDir(p)
				continue
			}
			if strings.HasSuffix(name, rawSuffix) {
				dirty[p] = true
			}
		}
		for p := range dirty {
			c.collect(p, time.Time{})
		}
	}
}

func (c *collector) scanAll() {
	fns, _ := os.ReadDir(c.dir)
	for _, e := range fns {
		if e.IsDir() {
			c.scanDir(filepath.Join(c.dir, e.Name()))
		}
	}
}

func (c *collector) scanDir(dir string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), rawSuffix) {
			p := filepath.Join(dir, e.Name())
			st, err := os.Stat(p)
			if err != nil {
				continue
			}
			c.collect(p, st.ModTime())
		}
	}
}

// collect reads a raw file's new bytes and appends them, stamped, to the
// replica's log. at, when set, stamps a backlog.
func (c *collector) collect(raw string, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	base := strings.TrimSuffix(raw, rawSuffix)
	off, ok := c.offsets[raw]
	if !ok {
		off = readOffset(base + offsetSuffix)
	}
	f, err := os.Open(raw)
	if err != nil {
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return
	}
	if st.Size() < off {
		off = 0 // truncated behind our back
		delete(c.reclaimed, raw)
	}
	if st.Size() == off {
		c.offsets[raw] = off
		return
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return
	}
	data, err := io.ReadAll(io.LimitReader(f, 8<<20))
	if err != nil {
		return
	}
	off += int64(len(data))
	if at.IsZero() {
		at = time.Now()
	}
	data = append(c.partial[raw], data...)
	var out bytes.Buffer
	fn, id := filepath.Base(filepath.Dir(raw)), filepath.Base(base)
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 && len(data) < maxLineBytes {
			break
		}
		line := data
		if i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		text := strings.TrimSuffix(string(line), "\r")
		out.WriteString(at.UTC().Format(time.RFC3339Nano))
		out.WriteByte(' ')
		out.WriteString(text)
		out.WriteByte('\n')
		c.publish(function.LogLine{Time: at, Function: fn, Instance: id, Text: text})
		if len(data) == 0 {
			break
		}
	}
	c.partial[raw] = slices.Clone(data)
	c.appendLog(base+logSuffix, out.Bytes())
	c.offsets[raw] = off
	// What is saved is where the last whole line ended: a restarted
	// daemon reads an unfinished line again rather than lose its start.
	// It is saved before reclaim, so that a crash never leaves a saved
	// offset pointing into a hole.
	done := off - int64(len(data))
	os.WriteFile(base+offsetSuffix, []byte(strconv.FormatInt(done, 10)), 0o600)
	c.reclaim(raw, done)
}

// reclaim frees the disk space of a raw file's output up to read, which
// has been collected, keeping its last tailWindow bytes for LogTail.
//
// It punches a hole (FALLOC_FL_PUNCH_HOLE with FALLOC_FL_KEEP_SIZE)
// instead of truncating, because the shim keeps writing while we work: it
// appends (O_APPEND), so each of its writes lands at the end of the file
// as it is at that instant. Truncating to zero after reading cuts off
// whatever the shim appended between the read and the truncate, and no
// check beforehand closes that gap (a write can land between a re-stat
// and the truncate). A hole changes neither the file's size nor any
// offset in it: it only turns bytes below read, which we have already
// read and which the shim never writes again, into zeros that take no
// disk. Every byte at or past read, whether appended before, during or
// after the punch, stays where it is and is read next time. Offsets
// keep growing, so NAME.off stays valid across restarts.
// (FALLOC_FL_COLLAPSE_RANGE would shrink the file too, but it moves
// every later offset under the saved one, so a crash between the
// collapse and saving the new offset would repeat or skip output, and
// tmpfs and others cannot do it.)
//
// The price is a file whose apparent size (ls -l) keeps growing while
// its disk use (du) stays near rawReclaimEvery; it is removed with its
// replica. Where the file system cannot punch holes, raw files are left
// to grow: losing no line matters more than the space.
func (c *collector) reclaim(raw string, read int64) {
	end := read - tailWindow
	end -= end % rawPunchAlign
	from := c.reclaimed[raw]
	if c.noPunch || end-from < c.reclaimEvery {
		return
	}
	f, err := os.OpenFile(raw, os.O_WRONLY, 0)
	if err != nil {
		return
	}
	defer f.Close()
	err = unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, from, end-from)
	switch {
	case err == nil:
		c.reclaimed[raw] = end
	case errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS):
		c.noPunch = true
		c.log.Warn("file system cannot punch holes: replica output files keep growing until their replica is removed",
			"dir", c.dir, "err", err)
	}
}

func readOffset(p string) int64 {
	data, err := os.ReadFile(p)
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	return n
}

// appendLog appends to a replica's stamped log, rotating it first when it
// would grow past maxSize.
func (c *collector) appendLog(p string, data []byte) {
	if len(data) == 0 {
		return
	}
	if st, err := os.Stat(p); err == nil && st.Size()+int64(len(data)) > c.maxSize {
		for i := c.maxFiles - 1; i >= 1; i-- {
			from := p
			if i > 1 {
				from = p + "." + strconv.Itoa(i-1)
			}
			os.Rename(from, p+"."+strconv.Itoa(i))
		}
		if c.maxFiles == 1 {
			os.Remove(p)
		}
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return
	}
	f.Write(data)
	f.Close()
}

// publish hands a line to followers. A follower that cannot keep up
// loses lines rather than slow down collection. Called with c.mu held.
func (c *collector) publish(l function.LogLine) {
	for s := range c.subs {
		if s.fn != l.Function || (s.instance != "" && s.instance != l.Instance) {
			continue
		}
		select {
		case s.ch <- l:
		default:
		}
	}
}

// forget drops a removed replica's collection state.
func (c *collector) forget(raw string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.offsets, raw)
	delete(c.partial, raw)
	delete(c.reclaimed, raw)
}

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
		id, rest, _ := strings.Cut(name, ".")
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
