package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// With Config.ProfileDir set, every daemon serves Go's profiler (--pprof)
// and the scenarios save profiles of what they measure there, for the
// rows that miss their target: heap and goroutines at rest, CPU while
// deploying and scaling.

// pprofFlags are the extra daemon flags for profiling: a free loopback
// port, found by listening on it.
func (e *env) pprofFlags() ([]string, string, error) {
	if e.profileDir == "" {
		return nil, "", nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	addr := ln.Addr().String()
	ln.Close()
	// Debug logs say where a replica's start spends its time.
	return []string{"--pprof", addr, "--log-level", "debug"}, addr, nil
}

// saveProfile fetches /debug/pprof/PATH from d into the profile dir as
// NAME; a daemon without a profiler, or no profile dir, saves nothing.
// A failed fetch is logged, not returned: profiles are a help, not a
// measure.
func (b *bench) saveProfile(ctx context.Context, d *daemon, path, name string) {
	if d.pprof == "" || b.env.profileDir == "" {
		return
	}
	if err := fetchTo(ctx, "http://"+d.pprof+"/debug/pprof/"+path, filepath.Join(b.env.profileDir, name)); err != nil {
		b.logf("profile %s: %v", name, err)
		return
	}
	b.logf("profile saved: %s", filepath.Join(b.env.profileDir, name))
}

// cpuProfile starts a CPU profile of d for the duration of the returned
// stop function's caller's work; stop waits for the profile to be saved.
func (b *bench) cpuProfile(ctx context.Context, d *daemon, name string, max time.Duration) (stop func()) {
	if d.pprof == "" || b.env.profileDir == "" {
		return func() {}
	}
	pctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		// The profile is cut short when stop cancels the request: pprof
		// then writes nothing, so ask for a fixed window instead.
		b.saveProfile(pctx, d, fmt.Sprintf("profile?seconds=%d", int(max.Seconds())), name)
	}()
	return func() {
		<-done
		cancel()
	}
}

func fetchTo(ctx context.Context, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
