package runtime

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
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
// NAME.log in the state dir, which rotates at LogMaxSize into NAME.log.1.
// Its read offset is kept in NAME.off beside the raw file, so a restarted
// daemon neither loses nor repeats lines; lines written while it was down
// get the file's modification time. The disk space of what was read is
// given back by punching holes in the raw file (see reclaim), never by
// truncating it.
//
// Raw files live in the run dir (RunDir/output, a tmpfs under /run), not
// in the state dir, because the shim must never fail a write. Its copy
// loop (containerd's pkg/process copyPipes: io.CopyBuffer from the
// container's pipe to the file) stops at the first write error, logs
// "error copying stdout" and never reads the pipe again, so once the
// pipe's 64 KiB fill up the function blocks in write(2) for good — even
// after the disk has room again. No amount of punching by the collector
// closes that race on a full disk: the shim's next write can come before
// any hole. On the run dir raw files compete with nothing of the state
// dir's (store, stamped logs, images' neighbours), and the collector keeps
// them small whatever happens to the state dir: when appending to the
// stamped log fails, the lines are dropped and counted (LogDrops, the
// ember_log_*_dropped_total metrics), but the raw file is still read,
// its offset saved and its space given back. Replicas started by an
// older ember still write into the state dir's log tree; the collector
// reads both.

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

// replicaOfFile returns the replica whose file of a log directory name is
// (ID.out, ID.off, ID.log, ID.log.N). Replica IDs outside the default
// namespace hold a dot (NAME.NS-XXXXXXXX), so the suffix is found from the
// end.
func replicaOfFile(name string) string {
	for _, suf := range []string{rawSuffix, offsetSuffix, logSuffix} {
		if i := strings.LastIndex(name, suf); i > 0 && (i+len(suf) == len(name) || name[i+len(suf)] == '.') {
			return name[:i]
		}
	}
	id, _, _ := strings.Cut(name, ".")
	return id
}

type collector struct {
	// roots are the trees of raw files, FN/ID.out: the run dir's, and
	// the state dir's log tree where older embers had the shim write.
	roots []string
	// logDir holds the stamped logs, FN/ID.log.
	logDir   string
	maxSize  int64
	maxFiles int
	log      *slog.Logger
	metrics  *logMetrics
	// reclaimEvery is rawReclaimEvery; tests make it small.
	reclaimEvery int64
	// writeLog is appendLog; tests make it fail as a full disk does.
	writeLog func(p string, data []byte) error

	mu      sync.Mutex // guards below
	offsets map[string]int64
	partial map[string][]byte
	// reclaimed is, per raw file, up to where holes were punched by this
	// collector.
	reclaimed map[string]int64
	// saved is, per raw file, the offset last written to its NAME.off:
	// holes never go past it, so a restarted daemon never reads one.
	saved map[string]int64
	// noPunch holds the roots whose file system refused to punch a hole:
	// their raw files keep their read output until their replica is
	// removed.
	noPunch map[string]bool
	drops   LogDrops
	subs    map[*logSub]struct{}
}

type logSub struct {
	fn, instance string
	ch           chan function.LogLine
}

// newCollector collects raw files under roots (the first one is where
// new replicas' go) into stamped logs under logDir.
func newCollector(roots []string, logDir string, maxSize int64, maxFiles int, log *slog.Logger, m *logMetrics) *collector {
	c := &collector{roots: slices.Compact(roots), logDir: logDir, maxSize: maxSize, maxFiles: max(1, maxFiles), log: log,
		metrics: m, reclaimEvery: rawReclaimEvery,
		offsets: map[string]int64{}, partial: map[string][]byte{}, reclaimed: map[string]int64{}, saved: map[string]int64{},
		noPunch: map[string]bool{}, subs: map[*logSub]struct{}{}}
	c.writeLog = c.appendLog
	return c
}

// rawPath is the file the shim writes for a new replica.
func (r *Runtime) rawPath(fn, id string) string {
	return filepath.Join(r.logs.roots[0], fn, id+rawSuffix)
}

// rawPaths are the places a replica's raw file may be: its own, and the
// state dir's for a replica started by an older ember.
func (r *Runtime) rawPaths(fn, id string) []string {
	var ps []string
	for _, root := range r.logs.roots {
		ps = append(ps, filepath.Join(root, fn, id+rawSuffix))
	}
	return ps
}

// LogDrops reports the log lines dropped since the daemon started.
func (r *Runtime) LogDrops() LogDrops {
	r.logs.mu.Lock()
	defer r.logs.mu.Unlock()
	d := r.logs.drops
	d.ByFunction = maps.Clone(d.ByFunction)
	return d
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
	for _, root := range c.roots {
		watch(root)
		fns, _ := os.ReadDir(root)
		for _, e := range fns {
			if e.IsDir() {
				watch(filepath.Join(root, e.Name()))
			}
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
			if ev.Mask&unix.IN_ISDIR != 0 && slices.Contains(c.roots, dir) {
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
	for _, root := range c.roots {
		fns, _ := os.ReadDir(root)
		for _, e := range fns {
			if e.IsDir() {
				c.scanDir(filepath.Join(root, e.Name()))
			}
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
	fn, id := filepath.Base(filepath.Dir(raw)), filepath.Base(base)
	off, ok := c.offsets[raw]
	if !ok {
		off = readOffset(base + offsetSuffix)
		c.saved[raw] = off
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
		c.saved[raw] = 0
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
	lines := 0
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
		lines++
		c.publish(function.LogLine{Time: at, Function: fn, Instance: id, Text: text})
		if len(data) == 0 {
			break
		}
	}
	c.partial[raw] = slices.Clone(data)
	if out.Len() > 0 {
		// A failed append drops these lines and nothing else: the raw
		// file is read on and reclaimed as if they were kept, so the
		// shim's file never grows with the state dir full.
		c.noteAppend(fn, lines, out.Len(), c.writeLog(filepath.Join(c.logDir, fn, id+logSuffix), out.Bytes()))
	}
	c.offsets[raw] = off
	// What is saved is where the last whole line ended: a restarted
	// daemon reads an unfinished line again rather than lose its start.
	// It is saved before reclaim, and reclaim never goes past what was
	// saved, so that a crash never leaves a saved offset pointing into a
	// hole.
	done := off - int64(len(data))
	if err := writeOffset(base+offsetSuffix, done); err == nil {
		c.saved[raw] = done
	}
	c.reclaim(raw, c.saved[raw])
}

// noteAppend counts the lines an append failed to keep and says so once
// per episode: when the first append fails and when one works again.
// Called with c.mu held.
func (c *collector) noteAppend(fn string, lines, size int, err error) {
	if err == nil {
		if c.drops.Dropping {
			c.drops.Dropping = false
			c.log.Info("keeping function logs again", "dir", c.logDir, "dropped_since", c.drops.Since,
				"dropped_lines_total", c.drops.Lines)
		}
		return
	}
	if !c.drops.Dropping {
		c.drops.Dropping, c.drops.Since = true, time.Now()
		c.log.Warn("cannot append to function logs, dropping lines until it works again (functions keep running)",
			"dir", c.logDir, "err", err)
	}
	c.drops.Lines += uint64(lines)
	c.drops.Bytes += uint64(size)
	if c.drops.ByFunction == nil {
		c.drops.ByFunction = map[string]uint64{}
	}
	c.drops.ByFunction[fn] += uint64(lines)
	c.drops.LastError = err.Error()
	c.metrics.lines.WithLabelValues(fn).Add(float64(lines))
	c.metrics.bytes.WithLabelValues(fn).Add(float64(size))
}

// writeOffset replaces an offset file whole: writing it in place would
// leave it empty when the disk is full, and an empty one reads as 0.
func writeOffset(p string, off int64) error {
	tmp := p + ".tmp"
	err := os.WriteFile(tmp, []byte(strconv.FormatInt(off, 10)), 0o600)
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
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
	root := filepath.Dir(filepath.Dir(raw))
	if c.noPunch[root] || end-from < c.reclaimEvery {
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
		c.noPunch[root] = true
		c.log.Warn("file system cannot punch holes: replica output files keep growing until their replica is removed",
			"dir", root, "err", err)
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
func (c *collector) appendLog(p string, data []byte) error {
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
	if errors.Is(err, os.ErrNotExist) {
		// Its directory could not be made with the replica (a full
		// disk): make it now.
		if err = os.MkdirAll(filepath.Dir(p), 0o700); err == nil {
			f, err = os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		}
	}
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	return errors.Join(err, f.Close())
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
	delete(c.saved, raw)
}
