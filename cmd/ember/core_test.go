//go:build integration

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emberfaas/ember/api/wire"
	"github.com/emberfaas/ember/internal/itest"
)

// TestDeployInvokeRemove covers the core path: a FROM-scratch image running
// as a non-root user and a busybox shell image, both pulled from a registry
// on 127.0.0.1, reached through the gateway, then removed without a trace.
func TestDeployInvokeRemove(t *testing.T) {
	e := setup(t)
	d := newDaemon(t, e)

	out := d.mustEmber("deploy", "echo", "--image", e.echo, "--env", "GREETING=hi", "--label", "team=a")
	if !strings.Contains(out, "/function/echo") {
		t.Errorf("deploy output has no URL: %q", out)
	}
	d.mustEmber("deploy", "sh", "--image", e.shell)

	got, _, err := d.call("POST", "/function/echo/a/b?x=1&y=two", "hello body")
	if err != nil {
		t.Fatal(err)
	}
	if got.Method != "POST" || got.Path != "/a/b" || got.Query != "x=1&y=two" || got.Body != "hello body" {
		t.Errorf("function saw %s %s?%s body %q; want POST /a/b?x=1&y=two body %q", got.Method, got.Path, got.Query, got.Body, "hello body")
	}
	if got.UID != 65534 {
		t.Errorf("function ran as uid %d, want the image's user 65534", got.UID)
	}
	if got.Headers["X-Forwarded-Host"] != d.listen || got.Headers["X-Forwarded-For"] != "127.0.0.1" || got.Headers["X-Forwarded-Proto"] != "http" {
		t.Errorf("forwarding headers: %v", got.Headers)
	}
	// The root path and the NAME.openfaas-fn form.
	got, _, err = d.call("GET", "/function/echo.openfaas-fn", "")
	if err != nil || got.Path != "/" || got.Method != "GET" {
		t.Errorf("GET /function/echo.openfaas-fn: %+v, %v", got, err)
	}

	resp, err := http.Get(d.url("/function/sh/"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "hello from sh") {
		t.Errorf("sh function answered %d %q", resp.StatusCode, body)
	}

	// ember invoke: body from stdin, response to stdout.
	stdout, stderr, err := d.ember(strings.NewReader("via cli"), "invoke", "echo", "--path", "/cli?q=1", "-H", "X-Test: yes")
	if err != nil {
		t.Fatalf("invoke: %v %s", err, stderr)
	}
	var er itest.EchoResponse
	if err := json.Unmarshal([]byte(stdout), &er); err != nil {
		t.Fatal(err)
	}
	if er.Body != "via cli" || er.Path != "/cli" || er.Query != "q=1" || er.Headers["X-Test"] != "yes" || er.Method != "POST" {
		t.Errorf("invoke reached the function as %+v", er)
	}
	// Non-2xx: message on stderr, exit 1.
	_, stderr, err = d.ember(nil, "invoke", "echo", "--path", "/_/status?code=418")
	if err == nil || !strings.Contains(stderr, "418") {
		t.Errorf("invoke of a 418: err=%v stderr=%q", err, stderr)
	}

	// list and describe, as tables and JSON.
	out = d.mustEmber("list")
	for _, want := range []string{"NAME", "INVOCATIONS", "echo", e.echo, "sh"} {
		if !strings.Contains(out, want) {
			t.Errorf("list lacks %q:\n%s", want, out)
		}
	}
	if got := listColumn(out, "echo", "STATE"); got != "ready" {
		t.Errorf("list shows echo as %q, want ready:\n%s", got, out)
	}
	var fs []wire.FunctionStatus
	if err := json.Unmarshal([]byte(d.mustEmber("list", "-o", "json")), &fs); err != nil || len(fs) != 2 {
		t.Fatalf("list -o json: %v %v", fs, err)
	}
	if fs[0].Name != "echo" || fs[0].InvocationCount < 4 || fs[0].AvailableReplicas != 1 {
		t.Errorf("list -o json: %+v", fs[0])
	}
	var desc wire.FunctionStatus
	if err := json.Unmarshal([]byte(d.mustEmber("describe", "echo", "-o", "json")), &desc); err != nil {
		t.Fatal(err)
	}
	if len(desc.Instances) != 1 || desc.Instances[0].IP == "" || desc.Instances[0].State != "ready" || desc.EnvVars["GREETING"] != "hi" {
		t.Errorf("describe: %+v", desc)
	}
	out = d.mustEmber("describe", "echo")
	for _, want := range []string{"REPLICA", "RESTARTS", desc.Instances[0].IP, "ready", "GREETING"} {
		if !strings.Contains(out, want) {
			t.Errorf("describe lacks %q:\n%s", want, out)
		}
	}

	d.mustEmber("remove", "echo")
	d.mustEmber("remove", "sh")
	if _, _, err := d.call("GET", "/function/echo", ""); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("call after remove: %v, want 404", err)
	}
	d.assertNoLeftovers()
}

// TestDeployFailures checks that deploy explains why a function cannot
// become ready, and that bad input changes nothing.
func TestDeployFailures(t *testing.T) {
	e := setup(t)
	d := newDaemon(t, e)

	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"crash", []string{"--image", e.echo, "--env", "CRASH=3", "--timeout", "5s"},
			[]string{"exit code 3", "crashing with 3"}},
		{"nolock", []string{"--image", e.echo, "--env", "NO_LOCK=1", "--timeout", "3s"},
			[]string{"no lock file /tmp/.lock"}},
	} {
		_, stderr, err := d.ember(nil, append([]string{"deploy", tc.name}, tc.args...)...)
		if err == nil {
			t.Errorf("deploy %s succeeded", tc.name)
		}
		for _, w := range tc.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("deploy %s: stderr %q lacks %q", tc.name, stderr, w)
			}
		}
		// Each restart wrote it again: the last run's output is said once.
		if n := strings.Count(stderr, "crashing with 3"); tc.name == "crash" && n != 1 {
			t.Errorf("deploy crash: stderr has the process's output %d times, want once:\n%s", n, stderr)
		}
		t.Logf("deploy %s: stderr:\n%s", tc.name, stderr)
		d.mustEmber("remove", tc.name)
	}

	// Bad input: each gets a clear error and nothing is created.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"deploy", "Echo", "--image", e.echo}, "DNS-1123"},
		{[]string{"deploy", strings.Repeat("a", 64), "--image", e.echo}, "longer than 63"},
		{[]string{"deploy", "a..b", "--image", e.echo}, "DNS-1123"},
		{[]string{"deploy", "nope", "--image", e.registry.Ref("echo:missing")}, "not found"},
		{[]string{"deploy", "nope", "--image", e.registry.Ref("missing:v1")}, "not found"},
		{[]string{"deploy", "nope", "--image", e.registry.Ref("Upper:v1")}, "image reference"},
		{[]string{"describe", "nope"}, "not found"},
		{[]string{"remove", "nope"}, "not found"},
	} {
		_, stderr, err := d.ember(nil, tc.args...)
		if err == nil || !strings.Contains(stderr, tc.want) {
			t.Errorf("ember %s: err=%v stderr=%q, want an error containing %q", strings.Join(tc.args, " "), err, stderr, tc.want)
		}
	}
	// Registry down.
	if err := e.registry.SetDown(true); err != nil {
		t.Fatal(err)
	}
	_, stderr, err := d.ember(nil, "deploy", "nope", "--image", e.registry.Ref("echo:v1-down"))
	e.registry.SetDown(false)
	if err == nil || !strings.Contains(stderr, "connection refused") {
		t.Errorf("deploy with registry down: err=%v stderr=%q", err, stderr)
	}

	// Raw API: malformed JSON, oversized body, wrong method, unknown namespace.
	for _, tc := range []struct {
		method, path, body string
		code               int
	}{
		{"POST", "/system/functions", `{"service": "x", `, 400},
		{"POST", "/system/functions", `{"service":"x","image":"` + strings.Repeat("a", 2<<20) + `"}`, 413},
		{"PUT", "/system/functions", `{"service":"ghost","image":"` + e.echo + `"}`, 404},
		{"DELETE", "/system/functions", `{"functionName":"ghost"}`, 404},
		{"GET", "/system/function/ghost", ``, 404},
		{"PATCH", "/system/functions", `{}`, 405},
		{"GET", "/system/functions?namespace=other", ``, 404},
		{"GET", "/function/ghost", ``, 404},
	} {
		req, _ := http.NewRequest(tc.method, d.url(tc.path), strings.NewReader(tc.body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("%s %s: %d %q, want %d", tc.method, tc.path, resp.StatusCode, msg, tc.code)
		}
	}
	if out := d.mustEmber("list"); strings.Count(out, "\n") != 1 {
		t.Errorf("bad input left functions behind:\n%s", out)
	}
	d.assertNoLeftovers()
}

// TestRestartAdopts kills the daemon with SIGKILL and checks that the next
// one adopts the running replica (same ID, IP and process) and serves
// right away; then that a replica whose task vanished is recreated.
func TestRestartAdopts(t *testing.T) {
	e := setup(t)
	d := newDaemon(t, e)
	d.mustEmber("deploy", "echo", "--image", e.echo)
	before, _, err := d.call("GET", "/function/echo/", "")
	if err != nil {
		t.Fatal(err)
	}
	var desc wire.FunctionStatus
	json.Unmarshal([]byte(d.mustEmber("describe", "echo", "-o", "json")), &desc)

	// The next daemon checks ready replicas' health only every hour: if
	// the adopted replica served only once a health check had passed, the
	// request below would hang until its guard. It must serve on the
	// readiness check that adoption itself runs.
	flags := d.Extra
	d.Extra = append(append([]string(nil), flags...), "--health-interval", "1h")
	d.kill9()
	d.start()
	healthy := time.Now()
	after, err := callWithin(d, "/function/echo/", 30*time.Second)
	if err != nil {
		t.Fatalf("adopted replica not serving, with no health check due for an hour: %v", err)
	}
	t.Logf("first answer %s after /healthz", time.Since(healthy).Round(time.Millisecond))
	d.Extra = flags
	if after.Hostname != before.Hostname || after.PID != before.PID {
		t.Errorf("after restart a different process answered: %+v vs %+v", after, before)
	}
	var desc2 wire.FunctionStatus
	json.Unmarshal([]byte(d.mustEmber("describe", "echo", "-o", "json")), &desc2)
	if len(desc2.Instances) != 1 || desc2.Instances[0].ID != desc.Instances[0].ID || desc2.Instances[0].IP != desc.Instances[0].IP {
		t.Errorf("replicas after restart %+v, want just %+v", desc2.Instances, desc.Instances)
	}

	// The task vanishes while the daemon is down (as after a containerd
	// restart): the next daemon recreates the replica from the store.
	d.kill9()
	killTasks(t, e, d.ns)
	d.start()
	if err := waitCall(d, "/function/echo/", 30*time.Second); err != nil {
		t.Fatalf("not recreated: %v", err)
	}
	json.Unmarshal([]byte(d.mustEmber("describe", "echo", "-o", "json")), &desc2)
	if len(desc2.Instances) != 1 || desc2.Instances[0].ID == desc.Instances[0].ID {
		t.Errorf("after the task vanished: replicas %+v, want one new one", desc2.Instances)
	}
	d.mustEmber("remove", "echo")
	d.assertNoLeftovers()
}

// TestTwoDaemons runs two daemons side by side: same function name, each
// its own namespace, bridge, subnet and files; removing on one leaves the
// other untouched.
func TestTwoDaemons(t *testing.T) {
	e := setup(t)
	a := newDaemon(t, e)
	b := newDaemon(t, e)
	a.mustEmber("deploy", "echo", "--image", e.echo)
	b.mustEmber("deploy", "echo", "--image", e.echo2)
	ra, _, err := a.call("GET", "/function/echo/", "")
	if err != nil {
		t.Fatal(err)
	}
	rb, _, err := b.call("GET", "/function/echo/", "")
	if err != nil {
		t.Fatal(err)
	}
	if ra.Version != "v1" || rb.Version != "v2" {
		t.Errorf("versions %q and %q, want v1 and v2", ra.Version, rb.Version)
	}
	a.mustEmber("remove", "echo")
	a.assertNoLeftovers()
	if _, _, err := b.call("GET", "/function/echo/", ""); err != nil {
		t.Errorf("b after removal on a: %v", err)
	}
}

// TestImport loads docker-save and OCI archives and deploys from them
// without a registry.
func TestImport(t *testing.T) {
	e := setup(t)
	d := newDaemon(t, e)
	dir := t.TempDir()
	for _, tc := range []struct {
		file, ref string
		save      func(string, string) error
	}{
		{"docker.tar", "example.org/imported/docker:1", func(ref, p string) error { return itest.SaveDockerArchive(e.echoImg, ref, p) }},
		{"oci.tar", "example.org/imported/oci:1", func(ref, p string) error { return itest.SaveOCIArchive(e.echoImg, ref, p) }},
	} {
		p := filepath.Join(dir, tc.file)
		if err := tc.save(tc.ref, p); err != nil {
			t.Fatal(err)
		}
		out := d.mustEmber("import", p)
		if !strings.Contains(out, tc.ref) {
			t.Errorf("import %s printed %q, want %s", tc.file, out, tc.ref)
		}
		name := strings.TrimSuffix(tc.file, ".tar")
		d.mustEmber("deploy", name, "--image", tc.ref)
		if _, _, err := d.call("GET", "/function/"+name+"/", ""); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		d.mustEmber("remove", name)
	}
	_, stderr, err := d.ember(bytes.NewReader([]byte("not a tar")), "import", "-")
	if err == nil || stderr == "" {
		t.Errorf("import of garbage: err=%v stderr=%q", err, stderr)
	}
	d.assertNoLeftovers()
}

// TestLockBeforeListen deploys an app that writes its lock a second before
// it listens, as interpreted apps do: deploy returns only when it serves.
func TestLockBeforeListen(t *testing.T) {
	e := setup(t)
	d := newDaemon(t, e)
	d.mustEmber("deploy", "slow", "--image", e.echo, "--env", "LISTEN_DELAY=1s")
	if _, _, err := d.call("GET", "/function/slow/", ""); err != nil {
		t.Errorf("first call after deploy: %v", err)
	}
}

func waitCall(d *daemon, path string, timeout time.Duration) error {
	_, err := callWithin(d, path, timeout)
	return err
}

// callWithin retries a GET through the gateway until it succeeds or
// timeout passes, and returns the answer.
func callWithin(d *daemon, path string, timeout time.Duration) (itest.EchoResponse, error) {
	deadline := time.Now().Add(timeout)
	for {
		r, _, err := d.call("GET", path, "")
		if err == nil || time.Now().After(deadline) {
			return r, err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func killTasks(t *testing.T, e *env, ns string) {
	t.Helper()
	ctx := context.Background()
	cl, err := e.containerd.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	nctx := nsCtx(ctx, ns)
	cs, err := cl.Containers(nctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		task, err := c.Task(nctx, nil)
		if err != nil {
			continue
		}
		if _, err := task.Delete(nctx, withKill); err != nil {
			t.Fatal(fmt.Errorf("delete task %s: %w", c.ID(), err))
		}
	}
}
