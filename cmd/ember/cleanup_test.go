//go:build integration

package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emberfaas/ember/internal/itest"
)

// pluginDir makes a CNI plugin directory of symlinks to the real plugins,
// whose bridge the test can swap for one that fails on DEL.
type pluginDir struct {
	t   *testing.T
	dir string
}

func newPluginDir(t *testing.T) *pluginDir {
	t.Helper()
	dir := t.TempDir()
	ents, err := os.ReadDir(itest.CNIPluginDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if err := os.Symlink(filepath.Join(itest.CNIPluginDir, e.Name()), filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	return &pluginDir{t: t, dir: dir}
}

// failDel replaces bridge, atomically, with a script that fails every DEL
// and passes anything else to the real plugin.
func (p *pluginDir) failDel() {
	p.t.Helper()
	script := fmt.Sprintf(`#!/bin/sh
if [ "$CNI_COMMAND" = DEL ]; then
	echo '{"cniVersion":"1.0.0","code":999,"msg":"injected DEL failure"}'
	exit 1
fi
exec %s "$@"
`, itest.CNIBridgePlugin)
	tmp := filepath.Join(p.dir, ".bridge")
	if err := os.WriteFile(tmp, []byte(script), 0o755); err != nil {
		p.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(p.dir, "bridge")); err != nil {
		p.t.Fatal(err)
	}
}

// restore puts the real bridge back.
func (p *pluginDir) restore() {
	p.t.Helper()
	tmp := filepath.Join(p.dir, ".bridge")
	if err := os.Symlink(itest.CNIBridgePlugin, tmp); err != nil {
		p.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(p.dir, "bridge")); err != nil {
		p.t.Fatal(err)
	}
}

// metric reads one unlabelled series from the daemon's /metrics.
func (d *daemon) metric(name string) float64 {
	d.t.Helper()
	resp, err := http.Get(d.url("/metrics"))
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				d.t.Fatal(err)
			}
			return f
		}
	}
	d.t.Fatalf("no %s in /metrics", name)
	return 0
}

// A function with several replicas removed under load while CNI DEL fails:
// the removal cannot free the IP allocations and libcni's cache entries,
// which the daemon reports (metrics, status) and retries in the
// background; once DEL works again everything converges to nothing left.
func TestFailedRemovalConverges(t *testing.T) {
	e := setup(t)
	plugins := newPluginDir(t)
	d := newDaemon(t, e, "--cni-bin-dir", plugins.dir)
	const name = "leaky"
	d.mustEmber("deploy", name, "--image", e.echo, "--label", "com.openfaas.scale.min=4")
	d.waitFor(name, "4 ready", 60*time.Second, exactlyReady(4))

	// Load through the gateway while the function goes.
	ctx, stopLoad := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	var served sync.Map
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 0
			for ctx.Err() == nil {
				if _, code, _ := d.call("GET", "/function/"+name+"/", ""); code == 200 {
					n++
				}
			}
			served.Store(w, n)
		}()
	}
	time.Sleep(500 * time.Millisecond)

	plugins.failDel()
	d.mustEmber("remove", name)
	stopLoad()
	wg.Wait()

	deadline := time.Now().Add(30 * time.Second)
	for d.metric("ember_cleanup_pending") == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no cleanup pending 30s after a removal with a failing CNI DEL:\n%s", strings.Join(d.leftovers(), "\n"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	left := d.leftovers()
	failures := d.metric("ember_cleanup_failures_total")
	pending := d.metric("ember_cleanup_pending")
	if len(left) == 0 {
		t.Fatalf("nothing left while CNI DEL fails: the failure did not take")
	}
	status := d.mustEmber("status")
	if !strings.Contains(status, "Cleanup:") || !strings.Contains(status, "injected DEL failure") {
		t.Errorf("ember status does not report the failing cleanup:\n%s", status)
	}
	t.Logf("while DEL fails: %d things left, ember_cleanup_pending %v, ember_cleanup_failures_total %v:\n  %s",
		len(left), pending, failures, strings.Join(left, "\n  "))
	t.Logf("status: %s", statusLine(status, "Cleanup:"))

	// Let it fail a few more times, then heal.
	for d.metric("ember_cleanup_failures_total") < failures+2 {
		if time.Now().After(deadline) {
			t.Fatal("the janitor does not retry")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("after more retries: ember_cleanup_pending %v, ember_cleanup_failures_total %v",
		d.metric("ember_cleanup_pending"), d.metric("ember_cleanup_failures_total"))
	plugins.restore()
	healed := time.Now()
	deadline = healed.Add(90 * time.Second)
	for {
		left := d.leftovers()
		if len(left) == 0 && d.metric("ember_cleanup_pending") == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("90s after DEL works again, still left:\n  %s", strings.Join(left, "\n  "))
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("converged to nothing left %s after DEL works again; ember_cleanup_failures_total %v",
		time.Since(healed).Round(100*time.Millisecond), d.metric("ember_cleanup_failures_total"))
	if status := d.mustEmber("status"); strings.Contains(status, "Cleanup:") {
		t.Errorf("ember status still reports a cleanup:\n%s", status)
	}
}

func statusLine(status, prefix string) string {
	for line := range strings.Lines(status) {
		if strings.HasPrefix(line, prefix) {
			return strings.TrimSpace(line)
		}
	}
	return ""
}

// A daemon that starts with many leftovers answers /healthz before its
// sweep of them is done: it adopts, serves, then sweeps in the background.
func TestServesBeforeSweep(t *testing.T) {
	e := setup(t)
	d := newDaemon(t, e)
	d.Stop()

	// Leftovers of 150 replicas of a daemon that died: IP allocations and
	// network namespace files. Each costs a CNI DEL to free.
	subnet := netip.MustParsePrefix(d.Subnet)
	allocDir := filepath.Join(d.dir, "state", "cni", "networks", "ember-"+d.bridge)
	nsDir := filepath.Join(d.dir, "run", "netns-"+d.bridge)
	for _, dir := range []string{allocDir, nsDir} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ip := subnet.Addr()
	for range 50 {
		ip = ip.Next()
	}
	const orphans = 150
	for i := range orphans {
		id := fmt.Sprintf("orphan-%08x", i)
		if err := os.WriteFile(filepath.Join(allocDir, ip.String()), []byte(id+"\r\neth0"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(nsDir, id), nil, 0o444); err != nil {
			t.Fatal(err)
		}
		ip = ip.Next()
	}
	if left := d.leftovers(); len(left) != 2*orphans {
		t.Fatalf("%d leftovers planted, want %d", len(left), 2*orphans)
	}

	before := len(d.logs.String())
	const swept = "cleanup sweep done"
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if err := d.WaitHealthy(t.Context(), 30*time.Second); err != nil {
		t.Fatalf("%v:\n%s", err, d.logs)
	}
	healthy := time.Since(t0)
	if log := d.logs.String()[before:]; strings.Contains(log, swept) {
		t.Fatalf("the sweep was done before /healthz answered:\n%s", log)
	}
	for !strings.Contains(d.logs.String()[before:], swept) {
		if time.Since(t0) > 2*time.Minute {
			t.Fatalf("no %q in 2 minutes:\n%s", swept, d.logs.String()[before:])
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("/healthz answered %s after the start; the sweep of %d orphans was done %s after the start",
		healthy.Round(time.Millisecond), orphans, time.Since(t0).Round(10*time.Millisecond))
	d.assertNoLeftovers()
}
