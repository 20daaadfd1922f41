package scale

import (
	"context"
	"net"
	"time"
)

// Config tunes the controller. Zero values take the documented defaults.
type Config struct {
	// HealthInterval is how often ready replicas' lock files are checked
	// (default 5s, the HEALTHCHECK interval of OpenFaaS's examples).
	HealthInterval time.Duration
	// HealthMisses is how many consecutive missing-lock checks make a
	// replica be replaced (default 3).
	HealthMisses int
	// ProbeEvery is the longest a ready replica goes without a lock check
	// through task exec, when the budget below allows (default 1m).
	ProbeEvery time.Duration
	// ProbeSpacing is the shortest time between any two exec probes
	// (default 20s). A runc exec and the probe's start cost about 50 ms of
	// CPU, so this caps exec probes at about 0.25% of one core however
	// many replicas run, half of everything 50 replicas cost at rest;
	// between execs, a stat through /proc/PID/root (no process) watches
	// every ready replica each HealthInterval.
	ProbeSpacing time.Duration
	// DrainTimeout bounds how long a replica leaving service waits for its
	// in-flight requests (default 30s).
	DrainTimeout time.Duration
	// StopTimeout is the time between SIGTERM and SIGKILL (default 5s).
	StopTimeout time.Duration
	// WakeTimeout bounds how long a request waits for a ready replica
	// (default 30s).
	WakeTimeout time.Duration
	// CleanupBackoffMin and CleanupBackoffMax bound the delays between
	// retries of a failed cleanup (1s doubling to 1m).
	CleanupBackoffMin, CleanupBackoffMax time.Duration
	// BackoffMin and BackoffMax bound restart delays (1s doubling to 5m);
	// BackoffReset is how long a replica must run to reset it (10m).
	// Failed creations back off the same way, per function: after one,
	// the function's missing replicas wait; a replica created since that
	// stays ready for BackoffReset, or a new spec, resets it.
	BackoffMin, BackoffMax, BackoffReset time.Duration
	// ServiceWait bounds how long, at the daemon's start, functions with
	// nothing running wait for every service to be ready before they
	// start (default 15s; see servicesFirst).
	ServiceWait time.Duration
	// MaxCreates bounds the replica creations in flight on the host
	// (default 4; each function has at most 2, 1 after a failure). A
	// create is a snapshot, a CNI ADD with its iptables changes and a runc
	// start, a few hundred ms of CPU, and CNI serialises on a host-wide
	// lock: more at once only makes each slower.
	MaxCreates int
	// AutoscaleInterval is how often the autoscaler samples load while
	// any function is busy (default 250ms); idle, it sleeps.
	AutoscaleInterval time.Duration
	// LoadWindow is the window load is averaged over (default 3s).
	LoadWindow time.Duration
	// CPUSaturated reports whether the host's CPU has been saturated
	// over about the last LoadWindow; while it is, a function whose
	// replicas are busy gets no more. The autoscaler calls it on each
	// wake-up. Default: the share of time some task waited for a CPU
	// (/proc/pressure/cpu, "some") at or above CPUBrake, or without PSI,
	// the host busy 90% of the time or more (/proc/stat).
	CPUSaturated func() bool
	// CPUBrake is the CPU pressure share at which the default
	// CPUSaturated reports saturation (default 0.5).
	CPUBrake float64
	// MaxWaiting bounds the requests one function may hold while it wakes
	// (default 1000); more get ErrQueueFull.
	MaxWaiting int
	// CountFlush is how often invocation totals are sampled for the
	// request rate and written to Deps.Counts (default 10s): a daemon
	// killed outright loses at most this much of its counts.
	CountFlush time.Duration
	// MemoryLow reports host memory pressure, when paused functions are
	// parked early; default: MemAvailable below 10% of MemTotal.
	MemoryLow func() bool
	// Secrets, when set, is checked on deploy: a function that lists a
	// missing secret is refused.
	Secrets Secrets
	// Port is the port functions serve on (8080).
	Port int
	// Dial checks that a replica accepts connections; default a TCP dial.
	Dial func(ctx context.Context, addr string) error
	// ReadyGet asks a replica's HTTP readiness path and returns the status
	// code; default a plain GET of http://ADDR/PATH. The context carries a
	// short timeout per attempt.
	ReadyGet func(ctx context.Context, addr, path string) (status int, err error)
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.HealthInterval, 5*time.Second)
	def(&c.CountFlush, 10*time.Second)
	def(&c.ProbeEvery, time.Minute)
	def(&c.ProbeSpacing, 20*time.Second)
	def(&c.DrainTimeout, 30*time.Second)
	def(&c.StopTimeout, 5*time.Second)
	def(&c.WakeTimeout, 30*time.Second)
	def(&c.BackoffMin, time.Second)
	def(&c.BackoffMax, 5*time.Minute)
	def(&c.BackoffReset, 10*time.Minute)
	def(&c.CleanupBackoffMin, time.Second)
	def(&c.CleanupBackoffMax, time.Minute)
	def(&c.AutoscaleInterval, 250*time.Millisecond)
	def(&c.LoadWindow, 3*time.Second)
	def(&c.ServiceWait, 15*time.Second)
	if c.MaxWaiting == 0 {
		c.MaxWaiting = 1000
	}
	if c.MaxCreates <= 0 {
		c.MaxCreates = 4
	}
	if c.CPUBrake == 0 {
		c.CPUBrake = 0.5
	}
	if c.CPUSaturated == nil {
		c.CPUSaturated = newHostCPU(c.LoadWindow, c.CPUBrake).saturated
	}
	if c.MemoryLow == nil {
		c.MemoryLow = memoryLow
	}
	if c.HealthMisses == 0 {
		c.HealthMisses = 3
	}
	if c.Port == 0 {
		c.Port = 8080
	}
	if c.Dial == nil {
		d := net.Dialer{Timeout: time.Second}
		c.Dial = func(ctx context.Context, addr string) error {
			conn, err := d.DialContext(ctx, "tcp", addr)
			if err == nil {
				conn.Close()
			}
			return err
		}
	}
	if c.ReadyGet == nil {
		c.ReadyGet = readyGetter()
	}
}
