//go:build integration

package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
	if out := d.mustEmber("service", "up", "-f", file); !strings.Contains(out, "kv: created") {
		t.Fatalf("up: %q, want kv created", out)
	}
	id := d.serviceReady("kv", "")
	if out := d.mustEmber("service", "up", "-f", file); !strings.Contains(out, "kv: unchanged") {
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

	d.mustEmber("service", "restart", "kv")
	id = d.serviceReady("kv", id)
	get("after a service restart", "hello")

	write(kv2)
	if out := d.mustEmber("service", "up", "-f", file); !strings.Contains(out, "kv: recreated") {
		t.Fatalf("up with a new image: %q, want kv recreated", out)
	}
	d.serviceReady("kv", id)
	get("after an image update", "hello")

	d.kill9()
	d.start()
	d.serviceReady("kv", "")
	get("after SIGKILL and restart of the daemon", "hello")

	// A reboot, as far as containerd's tasks go: the daemon dies, then
	// every task with it; containers and volumes stay.
	d.kill9()
	killTasks(t, d.e, d.ns)
	d.start()
	d.serviceReady("kv", "")
	get("after every task was gone", "hello")

	out := d.mustEmber("service", "ls")
	if !strings.Contains(out, "kv") || !strings.Contains(out, "ready") {
		t.Errorf("service ls:\n%s", out)
	}
	t.Logf("$ ember service ls\n%s", out)
	if out := d.mustEmber("service", "logs", "kv"); !strings.Contains(out, "kv serving on :7000") {
		t.Errorf("service logs:\n%s", out)
	}
	if out := d.mustEmber("status"); !strings.Contains(out, "Services:") {
		t.Errorf("status does not list services:\n%s", out)
	}
	if out := d.mustEmber("list"); strings.Contains(out, "kv") {
		t.Errorf("ember list shows the service among functions:\n%s", out)
	}

	vol := filepath.Join(d.dir, "state", "volumes", "data")
	d.mustEmber("service", "down", "kv")
	if _, err := os.Stat(filepath.Join(vol, "greeting")); err != nil {
		t.Fatalf("down without --volumes removed the volume: %v", err)
	}
	if _, _, err := httpDo(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/greeting", port), ""); err == nil {
		t.Errorf("the port still answers after down")
	}
	d.mustEmber("service", "up", "-f", file)
	d.serviceReady("kv", "")
	get("after down and up", "hello")
	d.mustEmber("service", "down", "--volumes")
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
