//go:build integration

package main

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emberfaas/ember/api/wire"
	"github.com/emberfaas/ember/function"
	"github.com/emberfaas/ember/internal/itest"
	"github.com/emberfaas/ember/runtime"
)

// TestSharedShimCrash runs a function's replicas under one containerd
// shim, SIGKILLs that shim while a load runs, and checks that the crash is
// handled as the crash of every replica it served: each is restarted in
// place (same ID and IP) under a new shared shim, and no request fails but
// those that were inside the app when its process died. Removing the
// function then ends the shim and leaves nothing, its socket included.
func TestSharedShimCrash(t *testing.T) {
	e := setup(t)
	d := newDaemon(t, e)
	gw := netip.MustParsePrefix(d.Subnet).Masked().Addr().Next()
	effects := startSink(t, gw)
	const replicas = 3
	d.mustEmber("deploy", chaosFn, "--image", e.echo, "--env", "SINK_URL="+effects.url,
		"--label", fmt.Sprintf("%s=%d", function.LabelScaleMin, replicas),
		"--label", function.LabelScaleMax+"=5", "--label", function.LabelScaleDownWindow+"=10m")
	before := d.waitFor(chaosFn, fmt.Sprintf("%d ready", replicas), 60*time.Second, exactlyReady(replicas))

	shim := onlyShim(t, e, d)
	procs := replicaPIDs(t, e.containerd, d, before)
	for _, pid := range procs {
		if ppid := parentOf(t, pid); ppid != shim.PID {
			t.Fatalf("replica process %d has parent %d, want the shared shim %d", pid, ppid, shim.PID)
		}
	}
	t.Logf("%d replicas (processes %v) under one shim, pid %d", replicas, procs, shim.PID)

	l := startChaosLoad(t, d, chaosWorkers, 150_000, 2*time.Minute)
	time.Sleep(time.Second)
	killed := time.Now()
	if err := syscall.Kill(shim.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// The replicas' processes outlive their shim until containerd, seeing
	// it gone, cleans its tasks up: requests in flight in them until then
	// may be cut.
	deadline := time.Now().Add(30 * time.Second)
	for slices.ContainsFunc(procs, alive) {
		if time.Now().After(deadline) {
			t.Fatalf("replica processes %v still alive 30s after their shim's SIGKILL", procs)
		}
		time.Sleep(5 * time.Millisecond)
	}
	died := time.Now()
	after := d.waitFor(chaosFn, "all restarted", 60*time.Second, func(f wire.FunctionStatus) bool {
		return exactlyReady(replicas)(f) && !slices.ContainsFunc(f.Instances, func(r function.Replica) bool { return r.Restarts != 1 })
	})
	back := time.Now()
	l.waitOK(t, back, 50, 30*time.Second)
	st := l.stop()

	if b, a := replicaSet(before), replicaSet(after); !slices.Equal(b, a) {
		t.Errorf("replicas before the shim's crash %v, after %v: want the same, restarted in place", b, a)
	}
	for _, r := range after.Instances {
		t.Logf("replica %s: %d restart(s), last exit %q", r.ID, r.Restarts, r.LastExit)
		if !strings.Contains(r.LastExit, "shim ended") {
			t.Errorf("replica %s: last exit %q, want it to say its shim ended", r.ID, r.LastExit)
		}
	}
	if s := onlyShim(t, e, d); s.PID == shim.PID {
		t.Errorf("shim %d still serving after its SIGKILL", s.PID)
	}

	var ok, cut int
	var failures []string
	for _, r := range st.results {
		switch {
		case r.err == nil:
			ok++
		case r.code == http.StatusBadGateway && r.start.Before(died.Add(crashGrace)) && r.end.After(killed):
			// In flight in the app when its process died (or sent on a
			// kept-alive connection to it just after): it may have acted
			// on the request, so it is not sent again. As TestChaos
			// counts them.
			cut++
		default:
			failures = append(failures, fmt.Sprintf("%s %d %v", r.start.Format("15:04:05.000"), r.code, r.err))
		}
	}
	t.Logf("load: %d requests, %d ok, %d in flight in the apps when the shim's SIGKILL ended them, %d failed; "+
		"processes gone %s after the SIGKILL, all %d replicas ready again %s after it",
		len(st.results), ok, cut, len(failures), died.Sub(killed).Round(time.Millisecond), replicas,
		back.Sub(killed).Round(time.Millisecond))
	if len(failures) > 0 {
		t.Errorf("%d requests failed, first:\n  %s", len(failures), strings.Join(failures[:min(10, len(failures))], "\n  "))
	}
	// A worker has one request in flight: at most one per replica that
	// died under it.
	if cut > chaosWorkers*replicas {
		t.Errorf("%d requests cut by the crash, want at most %d", cut, chaosWorkers*replicas)
	}

	d.mustEmber("remove", chaosFn)
	waitGone(t, d, chaosFn, 60*time.Second)
	d.assertNoLeftovers()
	if shims := nsShims(t, e, d); len(shims) > 0 {
		t.Errorf("shims left after the function's removal: %+v", shims)
	}
	sock := e.containerd.ShimSocket(d.ns, runtime.ShimGroup(function.Spec{Name: chaosFn}))
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("shim socket %s left after the function's removal (stat: %v)", sock, err)
	}
}

func nsShims(t *testing.T, e *env, d *daemon) []itest.Shim {
	t.Helper()
	shims, err := e.containerd.Shims()
	if err != nil {
		t.Fatal(err)
	}
	return slices.DeleteFunc(shims, func(s itest.Shim) bool { return s.Namespace != d.ns })
}

func onlyShim(t *testing.T, e *env, d *daemon) itest.Shim {
	t.Helper()
	shims := nsShims(t, e, d)
	if len(shims) != 1 {
		t.Fatalf("%d shims serve the function, want one: %+v", len(shims), shims)
	}
	return shims[0]
}

// replicaPIDs are the replicas' main processes, as containerd knows them.
func replicaPIDs(t *testing.T, ctrd *itest.Containerd, d *daemon, f wire.FunctionStatus) []int {
	t.Helper()
	ctx := nsCtx(t.Context(), d.ns)
	cl, err := ctrd.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var pids []int
	for _, r := range f.Instances {
		c, err := cl.LoadContainer(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		task, err := c.Task(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		pids = append(pids, int(task.Pid()))
	}
	return pids
}

func parentOf(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// State and parent follow the command's closing parenthesis.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	var ppid int
	fmt.Sscan(f[1], &ppid)
	return ppid
}

// alive reports whether pid runs (a zombie does not).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && f[0] != "Z"
}
