//go:build integration

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/emberfaas/ember/api/wire"
	"github.com/emberfaas/ember/function"
	"github.com/emberfaas/ember/internal/itest"
)

// kvImages builds the key-value test service twice (two images of one
// program, for an image update) and pushes them to the shared registry.
func kvImages(t *testing.T, e *env) (v1, v2 string) {
	t.Helper()
	ctx := t.Context()
	for _, v := range []string{"v1", "v2"} {
		img, err := itest.BuildGoImage(ctx, itest.ImageOptions{Pkg: "./testdata/svc/kv", Version: v})
		if err != nil {
			t.Fatal(err)
		}
		if err := itest.Push(ctx, img, e.registry.Ref("kv:"+v)); err != nil {
			t.Fatal(err)
		}
	}
	return e.registry.Ref("kv:v1"), e.registry.Ref("kv:v2")
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func kvCompose(image string, port int) string {
	return fmt.Sprintf(`services:
  kv:
    image: %s
    environment:
      PORT: "7000"
    volumes: ["data:/data"]
    ports: ["%d:7000"]
    healthcheck:
      test: ["CMD", "/fn", "check"]
      interval: 500ms
    restart: always
volumes:
  data: {}
`, image, port)
}

// serviceReady waits until the service's replica is ready and returns its
// ID.
func (d *daemon) serviceReady(name, notID string) string {
	d.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		svcs, err := d.client.Services(context.Background())
		var last wire.ServiceStatus
		for _, s := range svcs {
			if s.Spec.Name != name {
				continue
			}
			last = s
			if len(s.Status.Replicas) == 1 && s.Status.Replicas[0].State == function.StateReady && s.Status.Replicas[0].ID != notID {
				return s.Status.Replicas[0].ID
			}
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("service %s not ready in 60s: %+v %v", name, last, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// emptyRun removes the daemon's pinned network namespaces, as a reboot
// empties /run.
func emptyRun(t *testing.T, d *daemon) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(d.dir, "run", "netns-"+d.bridge, "*"))
	for _, f := range files {
		if err := unix.Unmount(f, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			t.Fatalf("unmount %s: %v", f, err)
		}
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	if len(files) == 0 {
		t.Fatalf("no network namespaces under %s", filepath.Join(d.dir, "run"))
	}
}

// serviceIP is the address of the service's replica.
func (d *daemon) serviceIP(name string) string {
	d.t.Helper()
	svcs, err := d.client.Services(context.Background())
	if err != nil {
		d.t.Fatal(err)
	}
	for _, s := range svcs {
		if s.Spec.Name == name && len(s.Status.Replicas) == 1 {
			return s.Status.Replicas[0].IP
		}
	}
	d.t.Fatalf("service %s: no replica in %+v", name, svcs)
	return ""
}

// outageTolerance is how much longer than the service's own outage a
// function may fail: both loads sample every 20ms, and a call that finds
// its pooled connection to the old process dead is retried by Go's
// client on a new one.
const outageTolerance = 500 * time.Millisecond

// outageProbe GETs a URL every 20ms until finished, and measures the longest
// time without a correct answer.
type outageProbe struct {
	stop chan struct{}
	done chan outageResult
}

type outageResult struct {
	gap       time.Duration // longest time between two correct answers
	firstOK   time.Time
	total     int
	failed    int
	badStatus int // answers with a status other than 200
	firstErr  string
}

func startProbe(url, want string) *outageProbe {
	l := &outageProbe{stop: make(chan struct{}), done: make(chan outageResult, 1)}
	go func() {
		var res outageResult
		c := http.Client{Timeout: 3 * time.Second}
		last := time.Now()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-l.stop:
				res.gap = max(res.gap, time.Since(last))
				l.done <- res
				return
			case <-tick.C:
			}
			res.total++
			resp, err := c.Get(url)
			var body []byte
			if err == nil {
				body, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			now := time.Now()
			switch {
			case err == nil && resp.StatusCode == http.StatusOK && string(body) == want:
				res.gap = max(res.gap, now.Sub(last))
				last = now
				if res.firstOK.IsZero() {
					res.firstOK = now
				}
				continue
			case err == nil:
				res.badStatus++
				err = fmt.Errorf("status %d: %q", resp.StatusCode, body)
			}
			res.failed++
			if res.firstErr == "" {
				res.firstErr = now.Format("15:04:05.000") + " " + err.Error()
			}
		}
	}()
	return l
}

func (l *outageProbe) finish() outageResult {
	close(l.stop)
	return <-l.done
}

func httpDo(method, url, body string) (string, int, error) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return "", 0, err
	}
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), resp.StatusCode, err
}

// A stateful service from a compose file, used by a function by its name:
// what the function writes survives a service restart, an image update, a
// SIGKILL of the daemon and a service down and up; only down --volumes
// removes it.
func TestServiceKeepsData(t *testing.T) {
	e := setup(t)
	kv1, kv2 := kvImages(t, e)
	d := newDaemon(t, e)
	t.Cleanup(func() {
		if d.running() {
			d.ember(nil, "service", "down", "--volumes")
		}
	})
	port := freePort(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "compose.yaml")
	write := func(image string) {
		if err := os.WriteFile(file, []byte(kvCompose(image, port)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(kv1)
	// session runs the CLI and logs it as a terminal would show it.
	session := func(args ...string) string {
		t.Helper()
		out := d.mustEmber(args...)
		t.Logf("$ ember %s\n%s", strings.Join(args, " "), out)
		return out
	}
	if out := session("service", "up", "-f", file); !strings.Contains(out, "kv: created") {
		t.Fatalf("up: %q, want kv created", out)
	}
	id := d.serviceReady("kv", "")
	if out := session("service", "up", "-f", file); !strings.Contains(out, "kv: unchanged") {
		t.Fatalf("second up: %q, want kv unchanged", out)
	}
	if got := d.serviceReady("kv", ""); got != id {
		t.Fatalf("an unchanged up replaced the replica: %s, was %s", got, id)
	}
	if err := d.client.Deploy(t.Context(), wire.FunctionDeployment{Service: "app", Image: e.echo,
		EnvVars: map[string]string{"KV_ADDR": "kv:7000"}}, 60*time.Second); err != nil {
		t.Fatal(err)
	}

	// get reads the key through the function (by the service's name) and
	// through the published port, retrying while the service restarts.
	get := func(when, want string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			viaFn, code, err := httpDo(http.MethodGet, d.url("/function/app/_/kv/greeting"), "")
			viaPort, pcode, perr := httpDo(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/greeting", port), "")
			if err == nil && perr == nil && code == 200 && pcode == 200 && viaFn == want && viaPort == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: through the function %q %d %v, through the port %q %d %v; want %q",
					when, viaFn, code, err, viaPort, pcode, perr, want)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	if body, code, err := httpDo(http.MethodPut, d.url("/function/app/_/kv/greeting"), "hello"); err != nil || code != 200 {
		t.Fatalf("PUT through the function: %q %d %v", body, code, err)
	}
	get("after writing", "hello")

	// Each disruption runs under load: GETs of the key straight to the
	// service (its own outage) and through the function, which reaches it
	// by name (what the function's clients see).
	svcIP := d.serviceIP("kv")
	svcURL := fmt.Sprintf("http://%s/greeting", net.JoinHostPort(svcIP, "7000"))
	fnURL := func() string {
		f := d.describe("app")
		if len(f.Instances) != 1 || f.Instances[0].IP == "" {
			t.Fatalf("app replicas: %+v", f.Instances)
		}
		return fmt.Sprintf("http://%s/_/kv/greeting", net.JoinHostPort(f.Instances[0].IP, "8080"))
	}
	measure := func(what, fnURL string, act func()) {
		t.Helper()
		svc, fn := startProbe(svcURL, "hello"), startProbe(fnURL, "hello")
		time.Sleep(300 * time.Millisecond)
		act()
		get(what, "hello")
		time.Sleep(300 * time.Millisecond)
		sg, fg := svc.finish(), fn.finish()
		t.Logf("%s: service unanswered for %v at most (%d failed GETs), function for %v (%d failed GETs of %d)",
			what, sg.gap.Round(time.Millisecond), sg.failed, fg.gap.Round(time.Millisecond), fg.failed, fg.total)
		if fg.gap > sg.gap+outageTolerance {
			t.Errorf("%s: the function failed for %v, longer than the service's own outage %v (+%v); first failure: %s",
				what, fg.gap, sg.gap, outageTolerance, fg.firstErr)
		}
		if got := d.serviceIP("kv"); got != svcIP {
			t.Errorf("%s: the service moved from %s to %s", what, svcIP, got)
		}
	}

	measure("service restart", fnURL(), func() {
		session("service", "restart", "kv")
		id = d.serviceReady("kv", id)
	})

	measure("image update", fnURL(), func() {
		write(kv2)
		if out := session("service", "up", "-f", file); !strings.Contains(out, "kv: recreated") {
			t.Fatalf("up with a new image: %q, want kv recreated", out)
		}
		id = d.serviceReady("kv", id)
	})

	measure("SIGKILL and restart of the daemon", fnURL(), func() {
		d.kill9()
		d.start()
		d.serviceReady("kv", "")
	})

	// A reboot: the daemon dies, then every task with it, and the network
	// namespaces pinned under the run dir (a tmpfs) are gone; containers,
	// volumes and the state dir stay. The function is
	// created again, and only once the service is ready: the calls held
	// by the gateway meanwhile are answered by a function that finds it.
	d.kill9()
	killTasks(t, d.e, d.ns)
	emptyRun(t, d)
	boot := time.Now()
	svc, gw := startProbe(svcURL, "hello"), startProbe(d.url("/function/app/_/kv/greeting"), "hello")
	d.start()
	d.serviceReady("kv", "")
	get("after every task was gone", "hello")
	time.Sleep(300 * time.Millisecond)
	sg, gg := svc.finish(), gw.finish()
	t.Logf("reboot: service answering %v after the daemon's start, the function through the gateway %v; the function answered %d GETs with an error status",
		sg.firstOK.Sub(boot).Round(time.Millisecond), gg.firstOK.Sub(boot).Round(time.Millisecond), gg.badStatus)
	if sg.firstOK.IsZero() || gg.firstOK.IsZero() {
		t.Errorf("reboot: the service (%s) or the function (%s) never answered", sg.firstErr, gg.firstErr)
	}
	if gg.badStatus > 0 {
		t.Errorf("reboot: the function answered %d GETs with an error status, first: %s", gg.badStatus, gg.firstErr)
	}
	if got := d.serviceIP("kv"); got != svcIP {
		t.Errorf("reboot: the service moved from %s to %s", svcIP, got)
	}

	out := session("service", "ls")
	if !strings.Contains(out, "kv") || !strings.Contains(out, "ready") {
		t.Errorf("service ls:\n%s", out)
	}
	if out := session("service", "logs", "kv"); !strings.Contains(out, "kv serving on :7000") {
		t.Errorf("service logs:\n%s", out)
	}
	if out := d.mustEmber("status"); !strings.Contains(out, "Services:") {
		t.Errorf("status does not list services:\n%s", out)
	}
	if out := d.mustEmber("list"); strings.Contains(out, "kv") {
		t.Errorf("ember list shows the service among functions:\n%s", out)
	}

	vol := filepath.Join(d.dir, "state", "volumes", "data")
	session("service", "down", "kv")
	if _, err := os.Stat(filepath.Join(vol, "greeting")); err != nil {
		t.Fatalf("down without --volumes removed the volume: %v", err)
	}
	if _, _, err := httpDo(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/greeting", port), ""); err == nil {
		t.Errorf("the port still answers after down")
	}
	session("service", "up", "-f", file)
	d.serviceReady("kv", "")
	get("after down and up", "hello")
	session("service", "down", "--volumes")
	if _, err := os.Stat(vol); !os.IsNotExist(err) {
		t.Errorf("down --volumes left %s: %v", vol, err)
	}
}

// Bad compose input is refused with the reason, and nothing is created.
func TestServiceRefusesBadInput(t *testing.T) {
	e := setup(t)
	d := newDaemon(t, e)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := busy.Addr().(*net.TCPAddr).Port
	good := fmt.Sprintf("  ok:\n    image: %s\n", e.echo)
	for name, tc := range map[string]struct{ yaml, want string }{
		"unknown key":   {"services:\n" + good + "  bad:\n    image: " + e.echo + "\n    privileged: true\n", `"privileged"`},
		"missing image": {"services:\n" + good + "  bad:\n    image: " + e.registry.Ref("nope:v1") + "\n", "nope"},
		"port in use":   {"services:\n" + good + fmt.Sprintf("  bad:\n    image: %s\n    ports: [\"%d:8080\"]\n", e.echo, busyPort), "not free"},
		"bind outside":  {"services:\n" + good + "  bad:\n    image: " + e.echo + "\n    volumes: [\"/etc:/host-etc\"]\n", "inside /etc"},
		"state dir":     {"services:\n" + good + "  bad:\n    image: " + e.echo + "\n    volumes: [\"" + filepath.Join(d.dir, "state") + ":/s\"]\n", "may not mount"},
	} {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "compose.yaml")
			if err := os.WriteFile(file, []byte(tc.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			_, errOut, err := d.ember(nil, "service", "up", "-f", file)
			if err == nil || !strings.Contains(errOut, tc.want) {
				t.Fatalf("up: err %v, stderr %q; want a failure naming %s", err, errOut, tc.want)
			}
			svcs, err := d.client.Services(t.Context())
			if err != nil || len(svcs) != 0 {
				t.Fatalf("services after a refused up: %+v %v, want none", svcs, err)
			}
			if m, _ := filepath.Glob(filepath.Join(d.dir, "state", "volumes", "*")); len(m) != 0 {
				t.Errorf("volumes after a refused up: %v", m)
			}
		})
	}
}

// The daemon brings up STATE/compose.yaml at start, as `service up -f`
// would; a file it refuses is logged and creates nothing.
func TestServiceDefaultCompose(t *testing.T) {
	e := setup(t)
	d := newDaemon(t, e)
	file := filepath.Join(d.dir, "state", "compose.yaml")
	d.kill9()
	if err := os.WriteFile(file, []byte("services:\n  web:\n    image: "+e.echo+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d.start()
	d.serviceReady("web", "")
	t.Logf("$ ember service ls\n%s", d.mustEmber("service", "ls"))
	d.mustEmber("service", "down")

	if err := os.WriteFile(file, []byte("services:\n  web:\n    image: "+e.echo+"\n    privileged: true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d.kill9()
	d.start()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(d.logs.String(), "default compose file refused") {
		if time.Now().After(deadline) {
			t.Fatal("no refusal of the bad default compose file logged in 30s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(d.logs.String(), `privileged`) {
		t.Errorf("the refusal does not name the key")
	}
	if svcs, err := d.client.Services(t.Context()); err != nil || len(svcs) != 0 {
		t.Errorf("services after a refused default file: %+v %v, want none", svcs, err)
	}
}

// A service whose healthcheck keeps failing shows as unhealthy, and ready
// again once it passes; it is not restarted for it.
func TestServiceUnhealthy(t *testing.T) {
	e := setup(t)
	kv1, _ := kvImages(t, e)
	d := newDaemon(t, e)
	port := freePort(t)
	file := filepath.Join(t.TempDir(), "compose.yaml")
	yaml := strings.Replace(kvCompose(kv1, port), "interval: 500ms", "interval: 500ms\n      retries: 2", 1)
	if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	d.mustEmber("service", "up", "-f", file)
	id := d.serviceReady("kv", "")
	sick := func(v string) {
		t.Helper()
		if body, code, err := httpDo(http.MethodPut, fmt.Sprintf("http://127.0.0.1:%d/_sick", port), v); err != nil || code != 200 {
			t.Fatalf("PUT _sick: %q %d %v", body, code, err)
		}
	}
	waitState := func(want function.State) function.Replica {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			svcs, err := d.client.Services(t.Context())
			if err == nil && len(svcs) == 1 && len(svcs[0].Status.Replicas) == 1 && svcs[0].Status.Replicas[0].State == want {
				return svcs[0].Status.Replicas[0]
			}
			if time.Now().After(deadline) {
				t.Fatalf("kv not %s in 20s: %+v %v", want, svcs, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	sick("yes")
	r := waitState(function.StateUnhealthy)
	t.Logf("$ ember service ls\n%s", d.mustEmber("service", "ls"))
	if out := d.mustEmber("status"); !strings.Contains(out, "unhealthy") {
		t.Errorf("status does not count the unhealthy service:\n%s", out)
	}
	if !strings.Contains(r.Message, "healthcheck") {
		t.Errorf("message %q does not say why", r.Message)
	}
	sick("no")
	r = waitState(function.StateReady)
	if r.ID != id || r.Restarts != 0 {
		t.Errorf("after recovering: %+v, want %s never restarted", r, id)
	}
}
