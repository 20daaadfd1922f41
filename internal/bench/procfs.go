package bench

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emberfaas/ember/internal/itest"
)

// clockTick is USER_HZ, the unit of /proc/PID/stat times: 100 on every
// Linux architecture ember runs on.
const clockTick = 10 * time.Millisecond

// procCPU returns the CPU time pid has used, user and system, including
// that of its children it has waited for: a shim's runc execs count
// towards the shim.
func procCPU(pid int) (time.Duration, error) {
	self, children, err := procTimes(pid)
	return self + children, err
}

// procTimes returns pid's own CPU time (utime + stime) and that of its
// children it has waited for (cutime + cstime).
func procTimes(pid int) (self, children time.Duration, err error) {
	f, err := itest.ProcStat(pid)
	if err != nil {
		return 0, 0, err
	}
	// f[0] is field 3 (state); utime, stime, cutime, cstime are fields
	// 14 to 17.
	if len(f) < 15 {
		return 0, 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	var ticks [4]int64
	for j, s := range f[11:15] {
		if ticks[j], err = strconv.ParseInt(s, 10, 64); err != nil {
			return 0, 0, fmt.Errorf("parse /proc/%d/stat: %w", pid, err)
		}
	}
	return time.Duration(ticks[0]+ticks[1]) * clockTick, time.Duration(ticks[2]+ticks[3]) * clockTick, nil
}

// procRSS returns pid's resident set size in bytes.
func procRSS(pid int) (int64, error) {
	return procKB(fmt.Sprintf("/proc/%d/status", pid), "VmRSS")
}

// procPSS returns pid's proportional set size in bytes: shared pages (the
// shim binary's text, shared by every shim) divided among their users.
func procPSS(pid int) (int64, error) {
	return procKB(fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Pss")
}

func procKB(path, key string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != key {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse %s: %w", path, err)
		}
		return n << 10, nil
	}
	return 0, fmt.Errorf("%s: no %s", path, key)
}

// findProcess returns the PID of the live process whose command line
// contains every one of args.
func findProcess(args ...string) (int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		cmd := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if !slices.ContainsFunc(args, func(a string) bool { return !slices.Contains(cmd, a) }) {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("no process with %q", args)
}
