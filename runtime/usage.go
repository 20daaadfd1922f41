package runtime

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/emberfaas/ember/function"
)

// Usage sums the CPU and memory of the given replica cgroups, read from
// the cgroup files (no containerd call). CPU is in millicores since the
// previous call for the same cgroup, as OpenFaaS's usage field means.
func (r *Runtime) Usage(cgroups []string) function.Usage {
	var u function.Usage
	now := time.Now()
	for _, cg := range cgroups {
		if cg == "" {
			continue
		}
		cpuNs, mem, ok := readCgroup(cg)
		if !ok {
			continue
		}
		u.MemoryBytes += mem
		r.mu.Lock()
		prev, seen := r.cpu[cg]
		r.cpu[cg] = cpuSample{at: now, ns: cpuNs}
		r.mu.Unlock()
		if seen && now.After(prev.at) && cpuNs >= prev.ns {
			u.CPU += float64(cpuNs-prev.ns) / float64(now.Sub(prev.at).Nanoseconds()) * 1000
		}
	}
	return u
}

type cpuSample struct {
	at time.Time
	ns uint64
}

func readCgroup(cg string) (cpuNs uint64, mem float64, ok bool) {
	if unified() {
		stat, err := os.ReadFile(filepath.Join(cgroupRoot, cg, "cpu.stat"))
		if err != nil {
			return 0, 0, false
		}
		for line := range strings.Lines(string(stat)) {
			if v, found := strings.CutPrefix(line, "usage_usec "); found {
				us, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
				cpuNs = us * 1000
			}
		}
		mem = readFloat(filepath.Join(cgroupRoot, cg, "memory.current"))
		return cpuNs, mem, true
	}
	data, err := os.ReadFile(filepath.Join(cgroupRoot, "cpuacct", cg, "cpuacct.usage"))
	if err != nil {
		return 0, 0, false
	}
	cpuNs, _ = strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64)
	mem = readFloat(filepath.Join(cgroupRoot, "memory", cg, "memory.usage_in_bytes"))
	return cpuNs, mem, true
}

func readFloat(p string) float64 {
	data, err := os.ReadFile(p)
	if err != nil {
		return 0
	}
	f, _ := strconv.ParseFloat(strings.TrimSpace(string(data)), 64)
	return f
}
