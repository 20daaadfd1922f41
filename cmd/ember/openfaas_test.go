//go:build integration

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emberfaas/ember/api/wire"
	"github.com/emberfaas/ember/internal/itest"
)

// faas is an HTTP client that talks to a daemon the way faas-cli does
// (openfaas-api.md §11): JSON bodies, basic auth when logged in, and an
// empty "Authorization: Bearer" when not.
type faas struct {
	t          *testing.T
	base       string
	user, pass string
	hc         *http.Client
}

func newFaas(t *testing.T, d *daemon, pass string) *faas {
	return &faas{t: t, base: "http://" + d.listen, user: "admin", pass: pass,
		hc: &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // faas-cli does not follow redirects
		}}}
}

type reply struct {
	code   int
	header http.Header
	body   string
}

func (f *faas) do(method, path string, body any) reply {
	f.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			f.t.Fatal(err)
		}
		rd = strings.NewReader(string(data))
	}
	req, err := http.NewRequest(method, f.base+path, rd)
	if err != nil {
		f.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", "faas-cli/0.17.0")
	if f.pass != "" {
		req.SetBasicAuth(f.user, f.pass)
	} else {
		req.Header.Set("Authorization", "Bearer ")
	}
	resp, err := f.hc.Do(req)
	if err != nil {
		f.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header, string(data)}
}

func (f *faas) expect(method, path string, body any, code int) reply {
	f.t.Helper()
	r := f.do(method, path, body)
	if r.code != code {
		f.t.Errorf("%s %s: %d %q, want %d", method, path, r.code, r.body, code)
	}
	return r
}

func decodeJSON[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("decode %q: %v", s, err)
	}
	return v
}

// TestOpenFaaSContract drives every route of the OpenFaaS gateway contract
// the way faas-cli and the gateway's own components call them, against a
// daemon with authentication on, and checks shapes and status codes.
func TestOpenFaaSContract(t *testing.T) {
	e := setup(t)
	d := newDaemon(t, e, "--auth=true")
	pwFile := filepath.Join(d.dir, "state", "basic-auth-password")
	pw, err := os.ReadFile(pwFile)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(pwFile); st.Mode().Perm() != 0o600 {
		t.Errorf("password file mode %v, want 0600", st.Mode().Perm())
	}
	f := newFaas(t, d, strings.TrimSpace(string(pw)))
	anon := newFaas(t, d, "")

	// Auth: /system/* needs it on TCP, with OpenFaaS's exact 401.
	r := anon.expect("GET", "/system/functions", nil, 401)
	if r.header.Get("WWW-Authenticate") != `Basic realm="Restricted"` || !strings.Contains(r.body, "invalid credentials") {
		t.Errorf("401: header %q body %q", r.header.Get("WWW-Authenticate"), r.body)
	}
	wrong := newFaas(t, d, "wrong")
	wrong.expect("GET", "/system/info", nil, 401)
	anon.expect("GET", "/healthz", nil, 200)
	anon.expect("GET", "/metrics", nil, 200)
	anon.expect("GET", "/function/nothing", nil, 404)
	if r := f.expect("GET", "/system/functions", nil, 200); strings.TrimSpace(r.body) != "[]" {
		t.Errorf("empty list is %q, want []", r.body)
	}

	// ember's CLI over TCP: the password from EMBER_PASSWORD.
	for _, tc := range []struct {
		pw   string
		fail bool
	}{{strings.TrimSpace(string(pw)), false}, {"", true}} {
		cmd := exec.Command(e.bin, "list")
		cmd.Env = itest.ProcessEnv("EMBER_SOCKET=http://"+d.listen, "EMBER_PASSWORD="+tc.pw)
		out, err := cmd.CombinedOutput()
		if (err != nil) != tc.fail || (tc.fail && !strings.Contains(string(out), "invalid credentials")) {
			t.Errorf("ember list over TCP (password set: %v): %v %s", tc.pw != "", err, out)
		}
	}

	// faas-cli deploy: PUT, 404, then POST; 200 or 202 only. Unknown
	// fields are ignored.
	dep := map[string]any{"service": "fn1", "image": e.echo, "labels": map[string]string{}, "annotations": map[string]string{},
		"envVars": map[string]string{"A": "1"}, "registryAuth": "ignored", "network": "ignored"}
	f.expect("PUT", "/system/functions", dep, 404)
	f.expect("POST", "/system/functions", dep, 202)
	d.waitFor("fn1", "ready", 60*time.Second, exactlyReady(1))
	f.expect("PUT", "/system/functions", dep, 202)
	d.waitFor("fn1", "ready", 60*time.Second, exactlyReady(1))
	// A missing secret: 400 with OpenFaaS's message, nothing created.
	r = f.expect("POST", "/system/functions", map[string]any{"service": "fn2", "image": e.echo, "secrets": []string{"nope"}}, 400)
	if strings.TrimSpace(r.body) != "unable to find secret: nope" {
		t.Errorf("missing secret message %q", r.body)
	}
	f.expect("GET", "/system/function/fn2", nil, 404)

	// list and describe shapes.
	list := decodeJSON[[]map[string]any](t, f.expect("GET", "/system/functions?namespace=openfaas-fn", nil, 200).body)
	if len(list) != 1 {
		t.Fatalf("list: %v", list)
	}
	for _, k := range []string{"name", "image", "namespace", "labels", "annotations", "replicas", "availableReplicas", "createdAt", "envVars"} {
		if _, ok := list[0][k]; !ok {
			t.Errorf("list element lacks %q: %v", k, list[0])
		}
	}
	if list[0]["namespace"] != "openfaas-fn" {
		t.Errorf("namespace %v", list[0]["namespace"])
	}
	if _, err := time.Parse(time.RFC3339Nano, fmt.Sprint(list[0]["createdAt"])); err != nil {
		t.Errorf("createdAt: %v", err)
	}
	desc := decodeJSON[wire.FunctionStatus](t, f.expect("GET", "/system/function/fn1?usage=1", nil, 200).body)
	if desc.Usage == nil || desc.Usage.TotalMemoryBytes <= 0 {
		t.Errorf("describe usage: %+v", desc.Usage)
	}
	f.expect("GET", "/system/function/fn1.openfaas-fn", nil, 200)
	f.expect("GET", "/system/function/fn1?namespace=openfaas-fn&usage=false", nil, 200)
	f.expect("GET", "/system/function/fn1?namespace=other", nil, 404)
	f.expect("GET", "/system/functions?namespace=other", nil, 404)

	// Invocation, as faas-cli invoke sends it (NAME.openfaas-fn), with the
	// gateway's headers both ways.
	req, _ := http.NewRequest("POST", d.url("/function/fn1.openfaas-fn?q=1"), strings.NewReader("hi"))
	req.Header.Set("Content-Type", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	er := decodeJSON[itest.EchoResponse](t, string(body))
	if resp.Header.Get("X-Call-Id") == "" || resp.Header.Get("X-Start-Time") == "" {
		t.Errorf("response headers: %v", resp.Header)
	}
	if er.Headers["X-Call-Id"] != resp.Header.Get("X-Call-Id") || er.Headers["X-Start-Time"] == "" {
		t.Errorf("function saw call id %q, response says %q", er.Headers["X-Call-Id"], resp.Header.Get("X-Call-Id"))
	}
	req, _ = http.NewRequest("GET", d.url("/function/fn1/"), nil)
	req.Header.Set("X-Call-Id", "caller-id")
	req.Header.Set("X-Forwarded-For", "203.0.113.9")
	req.Header.Set("X-Forwarded-Host", "example.org")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	er = decodeJSON[itest.EchoResponse](t, string(body))
	if resp.Header.Get("X-Call-Id") != "caller-id" || er.Headers["X-Call-Id"] != "caller-id" ||
		er.Headers["X-Forwarded-For"] != "203.0.113.9" || er.Headers["X-Forwarded-Host"] != "example.org" {
		t.Errorf("caller's headers not kept: response %v, function saw %v", resp.Header, er.Headers)
	}
	// Redirects reach the caller; statuses pass through.
	if r := f.do("GET", "/function/fn1/_/redirect", nil); r.code != 302 || r.header.Get("Location") != "/elsewhere" {
		t.Errorf("redirect: %d %v", r.code, r.header)
	}
	f.expect("GET", "/function/fn1/_/status?code=503", nil, 503)
	// Streaming: the first line arrives before the second is written,
	// which the function does only an hour later (or when the caller
	// goes): a gateway that buffered would hold the line until the
	// guard ends the request.
	sctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	req, _ = http.NewRequestWithContext(sctx, "GET", d.url("/function/fn1/_/stream?n=2&ms=3600000"), nil)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	resp.Body.Close()
	cancel()
	if err != nil || line != "line 0\n" {
		t.Errorf("stream: first line %q (%v), want it while the second is an hour away", line, err)
	}

	// Scale: faas-cli's body, and the gateway's scale-from-zero form with
	// the namespace in the query only.
	f.expect("POST", "/system/scale-function/fn1", map[string]any{"serviceName": "fn1", "replicas": 2, "namespace": "openfaas-fn"}, 202)
	d.waitFor("fn1", "2 ready", 60*time.Second, exactlyReady(2))
	f.expect("POST", "/system/scale-function/fn1?namespace=openfaas-fn", map[string]any{"serviceName": "fn1", "replicas": 1}, 202)
	f.expect("POST", "/system/scale-function/ghost", map[string]any{"serviceName": "ghost", "replicas": 1}, 404)
	f.expect("POST", "/system/scale-function/fn1", `{"replicas": "many"}`, 400)

	// info: every nested field set (faas-cli dereferences them).
	info := decodeJSON[wire.GatewayInfo](t, f.expect("GET", "/system/info", nil, 200).body)
	if info.Provider == nil || info.Provider.Version == nil || info.Version == nil || info.Provider.Name == "" ||
		info.Provider.Orchestration == "" || info.Provider.Version.Release == "" || info.Provider.Version.SHA == "" ||
		info.Version.Release == "" || info.Version.SHA == "" || info.Arch == "" {
		t.Errorf("info: %+v", info)
	}
	if r := f.expect("GET", "/system/namespaces", nil, 200); strings.TrimSpace(r.body) != `["openfaas-fn"]` {
		t.Errorf("namespaces: %q", r.body)
	}

	// Secrets: 409 on duplicate, never a value in a response.
	f.expect("POST", "/system/secrets", map[string]any{"name": "s1", "value": "top-secret-1"}, 201)
	f.expect("POST", "/system/secrets", map[string]any{"name": "s1", "value": "x"}, 409)
	f.expect("POST", "/system/secrets", map[string]any{"name": "s2", "value": "from-file", "rawValue": []byte("raw-bytes")}, 201)
	r = f.expect("GET", "/system/secrets", nil, 200)
	if strings.Contains(r.body, "top-secret") || strings.Contains(r.body, "raw-bytes") {
		t.Errorf("secret value in list: %s", r.body)
	}
	ss := decodeJSON[[]wire.Secret](t, r.body)
	if len(ss) != 2 || ss[0].Name != "s1" || ss[0].Namespace != "openfaas-fn" {
		t.Errorf("secrets: %+v", ss)
	}
	f.expect("PUT", "/system/secrets", map[string]any{"name": "s1", "value": "top-secret-2"}, 200)
	f.expect("PUT", "/system/secrets", map[string]any{"name": "ghost", "value": "x"}, 404)
	f.expect("DELETE", "/system/secrets", map[string]any{"name": "s2"}, 200)
	f.expect("DELETE", "/system/secrets", map[string]any{"name": "s2"}, 404)
	f.expect("POST", "/system/secrets", map[string]any{"name": "Bad_Name", "value": "x"}, 400)
	// A function with a secret reads it at /var/openfaas/secrets/NAME.
	f.expect("POST", "/system/functions", map[string]any{"service": "withsecret", "image": e.echo, "secrets": []string{"s1"}}, 202)
	d.waitFor("withsecret", "ready", 60*time.Second, exactlyReady(1))
	if r := f.expect("GET", "/function/withsecret/_/secret?name=s1", nil, 200); r.body != "top-secret-2" {
		t.Errorf("function read secret %q", r.body)
	}
	if strings.Contains(d.logs.String(), "top-secret") {
		t.Error("a secret value appears in the daemon's log")
	}

	// Logs: NDJSON, tail=-1 as faas-cli sends by default, and follow.
	f.expect("GET", "/function/fn1/_/log?line=marker-1", nil, 200)
	deadline := time.Now().Add(10 * time.Second)
	for {
		r = f.expect("GET", "/system/logs?name=fn1&follow=false&tail=-1", nil, 200)
		if strings.Contains(r.body, "marker-1") || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Errorf("logs content type %q", ct)
	}
	var sawMarker bool
	for _, line := range strings.Split(strings.TrimSpace(r.body), "\n") {
		m := decodeJSON[map[string]any](t, line)
		for _, k := range []string{"name", "namespace", "instance", "timestamp", "text"} {
			if _, ok := m[k]; !ok {
				t.Errorf("log message lacks %q: %s", k, line)
			}
		}
		if m["text"] == "marker-1" {
			sawMarker = true
		}
	}
	if !sawMarker {
		t.Errorf("logs lack the marker line:\n%s", r.body)
	}
	f.expect("GET", "/system/logs?name=fn1&tail=x", nil, 422)
	f.expect("GET", "/system/logs?name=fn1&since=yesterday", nil, 422)
	f.expect("GET", "/system/logs?name=ghost", nil, 404)

	// Metrics with the gateway's names and function_name=NAME.NAMESPACE.
	r = anon.expect("GET", "/metrics", nil, 200)
	for _, want := range []string{
		`gateway_function_invocation_total{code="200",function_name="fn1.openfaas-fn"}`,
		`gateway_function_invocation_total{code="503",function_name="fn1.openfaas-fn"}`,
		`gateway_functions_seconds_bucket{code="200",function_name="fn1.openfaas-fn"`,
		`gateway_function_invocation_started{function_name="fn1.openfaas-fn"}`,
		`gateway_service_count{function_name="fn1.openfaas-fn"}`,
		`ember_function_replicas{function_name="fn1.openfaas-fn",state="ready"}`,
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// Delete: faas-cli's body, and the UI's form with the namespace in the
	// query only.
	f.expect("DELETE", "/system/functions", map[string]any{"functionName": "fn1", "namespace": "openfaas-fn"}, 202)
	f.expect("DELETE", "/system/functions", map[string]any{"functionName": "fn1"}, 404)
	f.expect("DELETE", "/system/functions?namespace=openfaas-fn", map[string]any{"functionName": "withsecret"}, 202)
	f.expect("DELETE", "/system/functions", `{"functionName": `, 400)
	d.assertNoLeftovers()
}

// TestAuthOff checks that with --auth=false the empty bearer token that
// faas-cli sends when not logged in is ignored, as OpenFaaS does.
func TestAuthOff(t *testing.T) {
	e := setup(t)
	d := newDaemon(t, e)
	anon := newFaas(t, d, "")
	anon.expect("GET", "/system/functions", nil, 200)
	anon.expect("GET", "/system/info", nil, 200)
}
