package bench

import (
	"fmt"
	"slices"
	"time"

	"github.com/prometheus/procfs"
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
	p, err := procfs.NewProc(pid)
	if err != nil {
		return 0, 0, err
	}
	st, err := p.Stat()
	if err != nil {
		return 0, 0, err
	}
	return time.Duration(st.UTime+st.STime) * clockTick, time.Duration(st.CUTime+st.CSTime) * clockTick, nil
}

// procRSS returns pid's resident set size in bytes.
func procRSS(pid int) (int64, error) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return 0, err
	}
	st, err := p.NewStatus()
	if err != nil {
		return 0, err
	}
	return int64(st.VmRSS), nil
}

// procRSSParts returns pid's resident anonymous and file-backed memory
// in bytes.
func procRSSParts(pid int) (anon, file int64, err error) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return 0, 0, err
	}
	st, err := p.NewStatus()
	if err != nil {
		return 0, 0, err
	}
	return int64(st.RssAnon), int64(st.RssFile), nil
}

// procPSS returns pid's proportional set size in bytes: shared pages (the
// shim binary's text, shared by every shim) divided among their users.
func procPSS(pid int) (int64, error) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return 0, err
	}
	sm, err := p.ProcSMapsRollup()
	if err != nil {
		return 0, err
	}
	return int64(sm.Pss), nil
}

// findProcess returns the PID of the live process whose command line
// contains every one of args.
func findProcess(args ...string) (int, error) {
	procs, err := procfs.AllProcs()
	if err != nil {
		return 0, err
	}
	for _, p := range procs {
		cmd, err := p.CmdLine()
		if err != nil {
			continue
		}
		if !slices.ContainsFunc(args, func(a string) bool { return !slices.Contains(cmd, a) }) {
			return p.PID, nil
		}
	}
	return 0, fmt.Errorf("no process with %q", args)
}
