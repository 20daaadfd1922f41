package bench

import (
	"bufio"
	"context"
	"debug/buildinfo"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
)

// Report is everything one run measured; it is what BENCH_OUT holds.
type Report struct {
	Mode      string    `json:"mode"` // "full" or "short"
	Started   time.Time `json:"started"`
	DurationS float64   `json:"duration_s"`
	Machine   Machine   `json:"machine"`
	// DaemonFlags are reportedFlags as the daemons were started with
	// them; values differing between daemons are joined with " / ".
	DaemonFlags map[string]string `json:"daemon_flags,omitempty"`
	// Load averages (1 min) from /proc/loadavg at the start and the end:
	// other work on the host shows here.
	LoadStart float64          `json:"loadavg_start"`
	LoadEnd   float64          `json:"loadavg_end"`
	Gateway   *GatewayResult   `json:"gateway,omitempty"`
	Wake      *WakeResult      `json:"wake,omitempty"`
	Deploy    *DeployResult    `json:"deploy,omitempty"`
	Autoscale *AutoscaleResult `json:"autoscale,omitempty"`
	Fixed     *FixedResult     `json:"autoscale_fixed,omitempty"`
	Density   *DensityResult   `json:"density,omitempty"`
	Recovery  *RecoveryResult  `json:"recovery,omitempty"`
	Shared    *SharedResult    `json:"shared,omitempty"`
	Async     *AsyncResult     `json:"async,omitempty"`
	Table     []Row            `json:"table"`
	Problems  []string         `json:"problems,omitempty"`
}

// Row is one line of the table. Reference is what the value is measured
// against in the same run, and Ratio is value/reference. Target, if set,
// is the goal the value is held to, with whether this run met it.
type Row struct {
	Scenario  string `json:"scenario"`
	Metric    string `json:"metric"`
	Value     string `json:"value"`
	Reference string `json:"reference,omitempty"`
	Ratio     string `json:"ratio,omitempty"`
	Target    string `json:"target,omitempty"`
}

// atMost is a Target: the goal limit, shown with fmtv, and whether
// value met it. A value not measured (NaN or zero with none wanted) is
// not a pass.
func atMost(value, limit float64, fmtv func(float64) string) string {
	verdict := "met"
	if !(value <= limit) || value == 0 {
		verdict = "NOT met"
	}
	return "≤ " + fmtv(limit) + ": " + verdict
}

// Machine describes the host the numbers come from.
type Machine struct {
	CPU         string `json:"cpu"`
	Cores       int    `json:"cores"`
	MemoryBytes int64  `json:"memory_bytes"`
	Kernel      string `json:"kernel"`
	Containerd  string `json:"containerd"`
	Runc        string `json:"runc"`
	// Go and Ember are read from the ember binary the daemons ran: the
	// toolchain that built it and the commit it was built from.
	Go    string `json:"go"`
	Ember string `json:"ember"`
}

func (m Machine) String() string {
	return fmt.Sprintf("%s, %d cores, %.1f GiB RAM, Linux %s, containerd %s, runc %s, %s; ember %s",
		m.CPU, m.Cores, float64(m.MemoryBytes)/(1<<30), m.Kernel, m.Containerd, m.Runc, m.Go, m.Ember)
}

// describeMachine fills in what the host and the ember binary bin say
// about themselves; unknown parts stay "?" rather than failing the run.
func describeMachine(ctx context.Context, root, bin, containerdVersion string) Machine {
	m := Machine{CPU: "?", Cores: runtime.NumCPU(), Kernel: "?", Containerd: containerdVersion, Runc: "?",
		Go: "?", Ember: "?"}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if kb, err := meminfo("MemTotal"); err == nil {
		m.MemoryBytes = kb << 10
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if out, err := exec.CommandContext(ctx, "runc", "--version").Output(); err == nil {
		// "runc version 1.1.5+ds1"
		if f := strings.Fields(strings.SplitN(string(out), "\n", 2)[0]); len(f) >= 3 {
			m.Runc = f[2]
		}
	}
	if bi, err := buildinfo.ReadFile(bin); err == nil {
		m.Go = bi.GoVersion
		m.Ember = vcsRevision(bi)
	}
	if m.Ember == "?" {
		// Built without VCS stamps: the checkout it was built from.
		git := exec.CommandContext(ctx, "git", "describe", "--tags", "--always", "--dirty")
		git.Dir = root
		if out, err := git.Output(); err == nil {
			m.Ember = strings.TrimSpace(string(out))
		}
	}
	return m
}

// vcsRevision is the short commit a binary was built from, "-dirty" with
// uncommitted changes, or "?".
func vcsRevision(bi *debug.BuildInfo) string {
	rev, dirty := "?", ""
	for _, s := range bi.Settings {
		switch {
		case s.Key == "vcs.revision" && s.Value != "":
			rev = s.Value[:min(7, len(s.Value))]
		case s.Key == "vcs.modified" && s.Value == "true":
			dirty = "-dirty"
		}
	}
	if rev == "?" {
		return rev
	}
	return rev + dirty
}

// loadavg returns the 1-minute load average, or 0.
func loadavg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// meminfo returns a /proc/meminfo field in kB.
func meminfo(key string) (int64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		if k == key {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("meminfo: no %s", key)
}

// WriteMarkdown prints the machine line and the table.
func (r *Report) WriteMarkdown(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "Machine: %s\n\n", r.Machine)
	if len(r.DaemonFlags) > 0 {
		var fl []string
		for _, name := range reportedFlags {
			if v, ok := r.DaemonFlags[name]; ok {
				fl = append(fl, "--"+name+" "+v)
			}
		}
		fmt.Fprintf(bw, "Daemons (from their command lines): %s\n\n", strings.Join(fl, ", "))
	}
	fmt.Fprintf(bw, "Run: %s mode, %s, took %s; load average %.2f at the start, %.2f at the end.\n\n",
		r.Mode, r.Started.UTC().Format(time.DateTime+" UTC"),
		time.Duration(r.DurationS*float64(time.Second)).Round(time.Second), r.LoadStart, r.LoadEnd)
	fmt.Fprintln(bw, "| scenario | metric | ember | reference | ratio | target |")
	fmt.Fprintln(bw, "|---|---|--:|--:|--:|--:|")
	for _, row := range r.Table {
		fmt.Fprintf(bw, "| %s | %s | %s | %s | %s | %s |\n", row.Scenario, row.Metric, row.Value,
			dash(row.Reference), dash(row.Ratio), dash(row.Target))
	}
	if len(r.Problems) > 0 {
		fmt.Fprintln(bw)
		for _, p := range r.Problems {
			fmt.Fprintf(bw, "PROBLEM: %s\n", p)
		}
	}
	return bw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

// WriteJSON writes the report to path.
func (r *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
