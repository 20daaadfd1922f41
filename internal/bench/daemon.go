package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/emberfaas/ember/api/wire"
	"github.com/emberfaas/ember/client"
	"github.com/emberfaas/ember/function"
	"github.com/emberfaas/ember/internal/itest"
)

// reportedFlags are the daemon settings the report prints. Every bench
// daemon is given them explicitly (daemonFlags), and the report reads them
// back from the command line each daemon was started with.
var reportedFlags = [...]string{"health-interval", "wake-timeout", "drain-timeout", "autoscale-cpu-brake"}

// daemonFlags are the flags every bench daemon gets after the harness's
// own: the settings the numbers depend on, at ember's defaults.
func daemonFlags() []string {
	return []string{"--health-interval", "5s", "--wake-timeout", "30s", "--drain-timeout", "30s", "--autoscale-cpu-brake", "0.5"}
}

// daemon is one `ember daemon` process (itest.Daemon) with daemonFlags, its
// log in a file and a client.
type daemon struct {
	*itest.Daemon
	e       *env
	name    string
	ns      string // shorthand for Namespace
	logPath string
	pprof   string // the profiler's address, if it serves one
	api     *client.Client
	torn    bool
}

// startDaemon starts a daemon and waits until it answers /healthz. Its
// teardown is registered with env, so it runs even when the caller fails;
// callers that are done with it earlier call teardown themselves. Extra
// flags come after daemonFlags, so they override them.
func (e *env) startDaemon(ctx context.Context, name string, extra ...string) (*daemon, error) {
	e.seq++
	dir, err := os.MkdirTemp(e.dir, "d-"+name+"-")
	if err != nil {
		return nil, err
	}
	pflags, pprof, err := e.pprofFlags()
	if err != nil {
		return nil, err
	}
	id, err := itest.NewDaemon(itest.DaemonOptions{
		Bin: e.bin, Containerd: e.ctrd, Dir: dir,
		NamespacePrefix: "bench-" + name + "-",
		// "bnch" keeps clear of the integration tests' "embe" bridges and
		// their subnets (10.200-239.x), which may run on the same host.
		BridgePrefix: "bnch",
		Subnet:       fmt.Sprintf("10.%d.%d.0/24", 240+os.Getpid()%15, e.seq%250),
		Extra:        append(append(daemonFlags(), pflags...), extra...),
		SysProcAttr: &syscall.SysProcAttr{
			// A ^C reaches the bench, which then removes functions before
			// it stops the daemon, instead of reaching both at once.
			Setpgid: true,
			// If the bench itself is killed, so is the daemon.
			Pdeathsig: syscall.SIGKILL,
		},
	})
	if err != nil {
		return nil, err
	}
	d := &daemon{Daemon: id, e: e, name: name, ns: id.Namespace,
		logPath: filepath.Join(e.logDir, fmt.Sprintf("daemon-%d-%s.log", e.seq, name)), pprof: pprof,
		api: client.New(id.Socket)}
	e.cleanups = append(e.cleanups, d.teardown)
	if err := d.spawn(); err != nil {
		return nil, err
	}
	if err := d.waitHealthy(ctx, 30*time.Second); err != nil {
		return nil, err
	}
	e.recordFlags(d)
	return d, nil
}

// flag is a setting of the running daemon, as its command line has it.
func (d *daemon) flag(name string) string {
	if v, ok := d.Flag(name); ok {
		return v
	}
	return "default" // not on the command line: the binary's own
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// spawn starts the daemon process, its output appended to its log file,
// without waiting for it to serve.
func (d *daemon) spawn() error {
	logf, err := os.OpenFile(d.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close() // the child has its own copy
	d.Output = logf
	if err := d.Start(); err != nil {
		return fmt.Errorf("daemon %s: %w", d.name, err)
	}
	return nil
}

func (d *daemon) pid() int { return d.Pid() }

// waitHealthy polls /healthz until it answers 200.
func (d *daemon) waitHealthy(ctx context.Context, timeout time.Duration) error {
	if err := d.WaitHealthy(ctx, timeout); err != nil {
		return fmt.Errorf("daemon %s: %w%s", d.name, err, d.logTail())
	}
	return nil
}

func (d *daemon) kill9() { d.Kill9() }

// teardown removes the daemon's functions, stops it, and removes whatever
// it left in containerd and on the host (bridge, masquerade rules, network
// namespaces, files), as the integration tests' harness does. It runs
// once; later calls do nothing.
func (d *daemon) teardown() error {
	if d.torn {
		return nil
	}
	d.torn = true
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var errs []error
	if d.Running() {
		if fns, err := d.api.List(ctx); err == nil {
			names := make([]string, len(fns))
			for i, f := range fns {
				names[i] = f.Name
			}
			errs = append(errs, parallel(ctx, 8, names, func(ctx context.Context, name string) error {
				if err := d.api.Remove(ctx, name); err != nil {
					return fmt.Errorf("daemon %s: remove %s: %w", d.name, name, err)
				}
				return nil
			}))
		}
	}
	if err := d.Cleanup(ctx); err != nil {
		errs = append(errs, fmt.Errorf("daemon %s: %w", d.name, err))
	}
	return errors.Join(errs...)
}

// logTail returns the end of the daemon's log, formatted to follow an
// error.
func (d *daemon) logTail() string {
	b, err := os.ReadFile(d.logPath)
	if err != nil || len(b) == 0 {
		return ""
	}
	if len(b) > 4<<10 {
		b = b[len(b)-4<<10:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return "\ndaemon log (tail):\n" + strings.TrimRight(string(b), "\n")
}

func (d *daemon) url(path string) string { return d.URL(path) }

// fnURL is a function's URL through the gateway.
func (d *daemon) fnURL(name, path string) string { return d.url("/function/" + name + path) }

// deploy deploys image as name and waits until a replica is ready, as
// `ember deploy` does.
func (d *daemon) deploy(ctx context.Context, name, image string, labels map[string]string) error {
	dep := wire.FunctionDeployment{Service: name, Image: image}
	if labels != nil {
		dep.Labels = &labels
	}
	if err := d.api.Deploy(ctx, dep, 2*time.Minute); err != nil {
		return fmt.Errorf("deploy %s: %w", name, err)
	}
	return nil
}

// label is a deployed function's label, as describe reports it: what the
// daemon runs, not what the bench meant to deploy.
func (d *daemon) label(ctx context.Context, name, key string) (string, error) {
	f, err := d.api.Describe(ctx, name)
	if err != nil {
		return "", err
	}
	if f.Labels == nil || (*f.Labels)[key] == "" {
		return "", fmt.Errorf("%s: no label %s", name, key)
	}
	return (*f.Labels)[key], nil
}

// waitFor polls describe every poll until cond holds.
func (d *daemon) waitFor(ctx context.Context, name string, timeout, poll time.Duration, what string, cond func(wire.FunctionStatus) bool) (wire.FunctionStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last wire.FunctionStatus
	var lastErr error
	for {
		f, err := d.api.Describe(ctx, name)
		if err == nil {
			if cond(f) {
				return f, nil
			}
			last, lastErr = f, nil
		} else if ctx.Err() == nil {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			return last, fmt.Errorf("%s not %s within %s: %s%v", name, what, timeout, summary(last), lastErr)
		case <-time.After(poll):
		}
	}
}

// summary describes a function's replicas for an error message.
func summary(f wire.FunctionStatus) string {
	var b strings.Builder
	fmt.Fprintf(&b, "desired %d, replicas [", f.Replicas)
	for i, r := range f.Instances {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%s:%s", r.ID, r.State)
		if r.Message != "" {
			fmt.Fprintf(&b, "(%s)", r.Message)
		}
	}
	b.WriteString("] ")
	return b.String()
}

func countState(f wire.FunctionStatus, st function.State) int {
	n := 0
	for _, r := range f.Instances {
		if r.State == st {
			n++
		}
	}
	return n
}

// onlyState is a waitFor condition: exactly n replicas, all in state st
// and with no message (for "zero": parking has finished).
func onlyState(n int, st function.State) func(wire.FunctionStatus) bool {
	return func(f wire.FunctionStatus) bool {
		if len(f.Instances) != n {
			return false
		}
		for _, r := range f.Instances {
			if r.State != st || (st == function.StateZero && r.Message != "") {
				return false
			}
		}
		return true
	}
}

// parallel runs do for each item, at most n at a time, and joins the
// errors.
func parallel[T any](ctx context.Context, n int, items []T, do func(context.Context, T) error) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex // guards errs
		errs []error
	)
	sem := make(chan struct{}, n)
	for _, it := range items {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return errors.Join(append(errs, ctx.Err())...)
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := do(ctx, it); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
