//go:build integration

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/chromedp"

	"github.com/emberfaas/ember/internal/itest"
)

// browser is a headless Chromium tab pointed at one daemon, answering the
// daemon's basic-auth prompt as a person would.
type browser struct {
	t   *testing.T
	ctx context.Context
	// shots is where screenshots go; empty: nowhere.
	shots string
}

// requireChromium finds Debian's chromium. Without it the test skips,
// except in CI, where a missing browser is a broken test host.
func requireChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "UI test needs chromium (apt-get install chromium, or ./install.sh --test-deps)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func newBrowser(t *testing.T, user, password string) *browser {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(requireChromium(t)),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1200, 900),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true), // root in a test host: no user namespaces to sandbox with
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("metrics-recording-only", true),
		// Only the daemon on loopback: a page that fetched anything from
		// elsewhere would fail here.
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	b := &browser{t: t, ctx: ctx}
	if os.Getenv("EMBER_UI_SCREENSHOTS") == "1" {
		root, err := itest.ModuleRoot(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		b.shots = filepath.Join(root, "docs", "ui")
	}

	// Answer the basic-auth challenge, as a person typing the password
	// into the browser's prompt: every request is paused, continued, and
	// given the credentials when the daemon asks.
	paused := chromedp.Events(ctx, fetch.RequestPaused)
	auth := chromedp.Events(ctx, fetch.AuthRequired)
	go func() {
		for ev, err := range paused {
			if err != nil {
				return
			}
			chromedp.Call(ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: ev.RequestID})
		}
	}()
	go func() {
		for ev, err := range auth {
			if err != nil {
				return
			}
			chromedp.Call(ctx, fetch.ContinueWithAuth, fetch.ContinueWithAuthParams{RequestID: ev.RequestID,
				AuthChallengeResponse: &fetch.AuthChallengeResponse{
					Response: fetch.AuthChallengeResponseResponseProvideCredentials, Username: user, Password: password}})
		}
	}()
	yes := true
	if _, err := chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{HandleAuthRequests: &yes}); err != nil {
		t.Fatal(err)
	}
	return b
}

// do runs the steps, failing the test with the page's text on error.
func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 90*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v\npage:\n%s", what, err, b.pageText())
	}
}

// until waits for a JavaScript expression to be truthy.
func (b *browser) until(what, expr string, timeout time.Duration) {
	b.t.Helper()
	b.do(what, func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(200*time.Millisecond),
			chromedp.WithPollingTimeout(timeout))(ctx, t)
		return chromedp.Void{}, err
	})
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("text of %s: %v\npage:\n%s", sel, err, b.pageText())
	}
	return s
}

func (b *browser) pageText() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string]("document.body ? document.body.innerText : ''"))
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return s
}

func (b *browser) screenshot(name string) {
	b.t.Helper()
	if b.shots == "" {
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.MkdirAll(b.shots, 0o755); err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b.shots, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

func jsString(s string) string { q, _ := json.Marshal(s); return string(q) }

// TestUI drives the dashboard in a real browser against a daemon on
// containerd, as a person would: log in, deploy, watch it become ready,
// invoke it, watch it pause and wake, read its logs, manage a secret, and
// see the API's error for an image that does not exist.
func TestUI(t *testing.T) {
	e := setup(t)
	d := newDaemon(t, e, "--auth=true")
	pw, err := os.ReadFile(filepath.Join(d.dir, "state", "basic-auth-password"))
	if err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t, "admin", strings.TrimSpace(string(pw)))
	const fn = "ui-echo"

	// Log in: / redirects to the dashboard, the browser asks for the
	// password, the page lists no functions yet.
	b.do("open", chromedp.Navigate(d.url("/")), chromedp.WaitVisible(chromedp.CSS("#functions")))
	b.until("empty list", `document.querySelector("#functions .empty") !== null`, 10*time.Second)
	if loc := b.pageLocation(); !strings.HasSuffix(loc, "/ui/") {
		t.Errorf("/ led to %s, want /ui/", loc)
	}

	// Deploy through the form; it waits for a ready replica, then shows
	// the function.
	b.do("deploy form",
		chromedp.Click(chromedp.CSS("#nav-deploy")),
		chromedp.WaitVisible(chromedp.CSS("#deploy-form")),
		chromedp.SendKeys(chromedp.CSS("#d-name"), fn),
		chromedp.SendKeys(chromedp.CSS("#d-image"), e.echo),
		chromedp.SetValue(chromedp.CSS("#d-env"), "GREETING=hello\nMODE=ui"),
		chromedp.SetValue(chromedp.CSS("#d-labels"), "com.openfaas.scale.zero=true\ncom.openfaas.scale.zero-duration=4s"),
		chromedp.SendKeys(chromedp.CSS("#d-memory"), "64Mi"),
	)
	b.screenshot("deploy")
	b.do("submit deploy", chromedp.Click(chromedp.CSS("#deploy")))
	b.until("function page after deploy", `location.hash === "#/fn/`+fn+`" && document.querySelector("#spec") !== null`, 90*time.Second)
	spec := b.text("#spec")
	for _, want := range []string{"GREETING=hello", "com.openfaas.scale.zero-duration=4s", "memory 64Mi", e.echo} {
		if !strings.Contains(spec, want) {
			t.Errorf("spec shows %q, want %q in it", spec, want)
		}
	}
	b.until("ready replica", `document.querySelector("#replicas [data-state=ready]") !== null`, 30*time.Second)
	inv0 := b.text("#fn-invocations")

	// Invoke: the response is shown, pretty JSON, and the count rises.
	b.do("invoke",
		chromedp.SetValue(chromedp.CSS("#inv-path"), "/hello"),
		chromedp.SetValue(chromedp.CSS("#inv-query"), "x=1"),
		chromedp.SetValue(chromedp.CSS("#inv-headers"), "Content-Type: application/json\nX-From: ui"),
		chromedp.SetValue(chromedp.CSS("#inv-body"), `{"hello":"ui"}`),
		chromedp.Click(chromedp.CSS("#invoke")),
	)
	b.until("invoke answer", `document.querySelector("#inv-code") !== null`, 30*time.Second)
	if code := b.text("#inv-code"); !strings.HasPrefix(code, "200") {
		t.Fatalf("invoke status = %q, want 200\n%s", code, b.pageText())
	}
	body := b.text("#inv-resp-body")
	for _, want := range []string{`"path": "/hello"`, `"query": "x=1"`, `"X-From": "ui"`} {
		if !strings.Contains(body, want) {
			t.Errorf("response body %q: no %q (pretty JSON of the echo)", body, want)
		}
	}
	b.until("count rises", `document.querySelector("#fn-invocations").textContent !== `+jsString(inv0), 10*time.Second)
	b.screenshot("function")

	// Logs: the replica's output shows up.
	b.until("logs", `document.querySelector("#logs").textContent.includes("echo listening")`, 20*time.Second)

	// Idle for the zero-duration: paused; an invocation wakes it.
	b.until("paused", `document.querySelector("#fn-states [data-state=paused]") !== null`, 60*time.Second)
	b.screenshot("function-paused")
	b.do("invoke paused", chromedp.Click(chromedp.CSS("#invoke")))
	b.until("woken", `document.querySelector("#inv-code") && document.querySelector("#inv-code").textContent.startsWith("200")
		&& document.querySelector("#fn-states [data-state=ready]") !== null`, 30*time.Second)
	if n := b.text("#fn-invocations"); n != "2" {
		t.Errorf("invocations after two calls = %q, want 2", n)
	}

	// The list shows it with its image and count.
	b.do("list", chromedp.Click(chromedp.CSS("#nav-functions")))
	b.until("listed", fmt.Sprintf(`(() => { const c = document.querySelector('[data-fn=%q]'); return c && c.querySelector(".inv").textContent === "2"; })()`, fn), 15*time.Second)
	if card := b.text(fmt.Sprintf(`[data-fn=%q]`, fn)); !strings.Contains(card, e.echo) {
		t.Errorf("list card %q: no image %s", card, e.echo)
	}
	b.screenshot("functions")

	// Secrets: create, see the name only, delete with confirmation.
	const secret, value = "ui-token", "s3cr3t-value-never-shown"
	b.do("secret form",
		chromedp.Click(chromedp.CSS("#nav-secrets")),
		chromedp.WaitVisible(chromedp.CSS("#secret-form")),
		chromedp.SendKeys(chromedp.CSS("#s-name"), secret),
		chromedp.SendKeys(chromedp.CSS("#s-value"), value),
		chromedp.Click(chromedp.CSS("#s-create")),
	)
	b.until("secret listed", fmt.Sprintf(`document.querySelector('[data-secret=%q]') !== null && document.querySelector("#s-value").value === ""`, secret), 10*time.Second)
	b.screenshot("secrets")
	if strings.Contains(b.pageText(), value) {
		t.Errorf("secrets page shows the value")
	}
	if list, err := d.client.Secrets(context.Background()); err != nil || len(list) != 1 || list[0].Name != secret {
		t.Errorf("daemon's secrets = %v, %v; want [%s]", list, err, secret)
	}
	b.do("delete secret",
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`[data-delete=%q]`, secret))),
		chromedp.WaitVisible(chromedp.CSS("#confirm-ok")),
		chromedp.Click(chromedp.CSS("#confirm-ok")),
	)
	b.until("secret gone", fmt.Sprintf(`document.querySelector('[data-secret=%q]') === null && document.querySelector("#secrets .empty") !== null`, secret), 10*time.Second)

	// A bad image: the API's reason is shown beside the image field.
	bad := e.registry.Ref("no-such-image:v1")
	b.do("bad deploy",
		chromedp.Click(chromedp.CSS("#nav-deploy")),
		chromedp.WaitVisible(chromedp.CSS("#deploy-form")),
		chromedp.SendKeys(chromedp.CSS("#d-name"), "ui-bad"),
		chromedp.SendKeys(chromedp.CSS("#d-image"), bad),
		chromedp.Click(chromedp.CSS("#deploy")),
	)
	b.until("image error", `document.querySelector("#err-d-image").textContent !== ""`, 150*time.Second)
	if msg := b.text("#err-d-image"); !strings.Contains(msg, "no-such-image") {
		t.Errorf("error beside the image = %q, want the API's reason naming the image", msg)
	}
	b.screenshot("deploy-error")
	if _, err := d.client.Describe(context.Background(), "ui-bad"); err == nil {
		t.Errorf("the refused deploy left a function behind")
	}

	// Phone-sized: the list still fits, one card a row.
	b.do("phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile), chromedp.Click(chromedp.CSS("#nav-functions")))
	b.until("phone list", fmt.Sprintf(`document.querySelector('[data-fn=%q]') !== null`, fn), 10*time.Second)
	if w, err := chromedp.Run(b.ctx, chromedp.Evaluate[int]("document.documentElement.scrollWidth")); err != nil || w > 390 {
		t.Errorf("phone layout is %d px wide (%v), want no sideways scroll at 390", w, err)
	}
	b.screenshot("functions-phone")
	b.do("desktop", chromedp.EmulateReset())

	// Remove with confirmation: cancel keeps it, confirm removes it.
	b.do("open function", chromedp.Navigate(d.url("/ui/#/fn/"+fn)), chromedp.WaitVisible(chromedp.CSS("#remove")),
		chromedp.Click(chromedp.CSS("#remove")), chromedp.WaitVisible(chromedp.CSS("#confirm-cancel")),
		chromedp.Click(chromedp.CSS("#confirm-cancel")))
	b.until("dialog closed", `!document.getElementById("confirm").open`, 10*time.Second)
	if _, err := d.client.Describe(context.Background(), fn); err != nil {
		t.Fatalf("cancel removed the function: %v", err)
	}
	b.do("remove", chromedp.Click(chromedp.CSS("#remove")), chromedp.WaitVisible(chromedp.CSS("#confirm-ok")),
		chromedp.Click(chromedp.CSS("#confirm-ok")))
	b.until("removed", fmt.Sprintf(`location.hash === "#/" && document.querySelector('[data-fn=%q]') === null`, fn), 30*time.Second)
}

func (b *browser) pageLocation() string {
	b.t.Helper()
	loc, err := chromedp.Run(b.ctx, chromedp.Location())
	if err != nil {
		b.t.Fatal(err)
	}
	return loc
}

// choose picks an option of a <select> as a person does: the value
// changes and the page hears a change event.
func (b *browser) choose(sel, value string) {
	b.t.Helper()
	expr := fmt.Sprintf(`(() => { const s = document.querySelector(%s); if (!s || ![...s.options].some((o) => o.value === %s)) return false;
		s.value = %s; s.dispatchEvent(new Event("change", { bubbles: true })); return true; })()`, jsString(sel), jsString(value), jsString(value))
	ok, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](expr))
	if err != nil || !ok {
		b.t.Fatalf("choose %s in %s: %v (no such option?)\npage:\n%s", value, sel, err, b.pageText())
	}
}

// TestUIServices drives the dashboard's services table and namespace
// chooser against a daemon with a compose service up and a second
// namespace: the service shows ready with its address and ports and
// restarts from its button; a function deployed into the namespace from
// the form is listed there and not in openfaas-fn, its page and invoke use
// NAME.NS; a secret's value never reaches the page.
func TestUIServices(t *testing.T) {
	e := setup(t)
	kv1, _ := kvImages(t, e)
	d := newDaemon(t, e, "--auth=true")
	pw, err := os.ReadFile(filepath.Join(d.dir, "state", "basic-auth-password"))
	if err != nil {
		t.Fatal(err)
	}
	api := newFaas(t, d, strings.TrimSpace(string(pw)))
	b := newBrowser(t, "admin", strings.TrimSpace(string(pw)))
	const fn, ns, secret, value = "ui-staged", "staging", "db", "staging-secret-never-shown"

	// A single namespace: no chooser, as before namespaces.
	b.do("open", chromedp.Navigate(d.url("/ui/")), chromedp.WaitVisible(chromedp.CSS("#functions")))
	b.until("empty list", `document.querySelector("#functions .empty") !== null`, 10*time.Second)
	if hidden, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](`document.querySelector("#ns-field").hidden && document.querySelector("#services-section").hidden`)); err != nil || !hidden {
		t.Errorf("one namespace and no services: chooser or services shown (%v)\n%s", err, b.pageText())
	}

	// A service, up through the daemon's API as `ember service up` does it.
	port := freePort(t)
	file := filepath.Join(t.TempDir(), "compose.yaml")
	if err := os.WriteFile(file, []byte(kvCompose(kv1, port)), 0o644); err != nil {
		t.Fatal(err)
	}
	d.mustEmber("service", "up", "-f", file)
	id := d.serviceReady("kv", "")
	ip := d.serviceIP("kv")
	b.until("service ready", `document.querySelector('#services [data-service="kv"] [data-state=ready]') !== null`, 30*time.Second)
	row := b.text(`#services [data-service="kv"]`)
	for _, want := range []string{kv1, ip, fmt.Sprintf("127.0.0.1:%d→7000", port)} {
		if !strings.Contains(row, want) {
			t.Errorf("service row %q: no %q", row, want)
		}
	}

	// Restart behind the confirmation: cancel keeps the replica, confirm
	// replaces it and the row comes back ready.
	b.do("restart cancel", chromedp.Click(chromedp.CSS(`[data-restart="kv"]`)),
		chromedp.WaitVisible(chromedp.CSS("#confirm-cancel")), chromedp.Click(chromedp.CSS("#confirm-cancel")))
	b.until("dialog closed", `!document.getElementById("confirm").open`, 10*time.Second)
	if got := d.serviceReady("kv", ""); got != id {
		t.Fatalf("cancel restarted the service: replica %s, was %s", got, id)
	}
	b.do("restart", chromedp.Click(chromedp.CSS(`[data-restart="kv"]`)),
		chromedp.WaitVisible(chromedp.CSS("#confirm-ok")), chromedp.Click(chromedp.CSS("#confirm-ok")))
	b.until("restart asked", `document.querySelector("#service-msg").textContent.includes("Restarting kv")`, 30*time.Second)
	d.serviceReady("kv", id)
	b.until("ready again", `document.querySelector('#services [data-service="kv"] [data-state=ready]') !== null`, 30*time.Second)

	// A second namespace with a secret: the chooser appears.
	api.expect("POST", "/system/namespace/", map[string]string{"name": ns}, 201)
	api.expect("POST", "/system/secrets", map[string]string{"name": secret, "value": value, "namespace": ns}, 201)
	b.until("chooser shown", `!document.querySelector("#ns-field").hidden && document.querySelector('#ns option[value="staging"]') !== null`, 15*time.Second)
	b.screenshot("services")

	// Deploy into it from the form; its page is #/fn/NAME.NS.
	b.do("deploy form", chromedp.Click(chromedp.CSS("#nav-deploy")), chromedp.WaitVisible(chromedp.CSS("#deploy-form")))
	b.until("deploy chooser", `!document.querySelector("#d-namespace-field").hidden`, 15*time.Second)
	b.choose("#d-namespace", ns)
	b.until("secrets of staging", `document.querySelector("#known-secrets").textContent === "existing: db"`, 10*time.Second)
	b.do("fill deploy",
		chromedp.SendKeys(chromedp.CSS("#d-name"), fn),
		chromedp.SendKeys(chromedp.CSS("#d-image"), e.echo),
		chromedp.SendKeys(chromedp.CSS("#d-secrets"), secret),
		chromedp.Click(chromedp.CSS("#deploy")),
	)
	b.until("function page", `location.hash === "#/fn/`+fn+`.`+ns+`" && document.querySelector("#spec") !== null`, 90*time.Second)
	if got := b.text("#fn-namespace"); !strings.Contains(got, ns) {
		t.Errorf("function page names namespace %q, want %s", got, ns)
	}
	if spec := b.text("#spec"); !strings.Contains(spec, secret) {
		t.Errorf("spec %q: no secret name %s", spec, secret)
	}
	if st, err := d.client.Describe(context.Background(), fn+"."+ns); err != nil || st.Namespace != ns {
		t.Fatalf("daemon's %s.%s = %+v, %v", fn, ns, st, err)
	}
	b.until("ready replica", `document.querySelector("#replicas [data-state=ready]") !== null`, 30*time.Second)
	if strings.Contains(b.pageText(), value) {
		t.Errorf("function page shows the secret's value")
	}
	b.do("invoke", chromedp.SetValue(chromedp.CSS("#inv-path"), "/ns"), chromedp.Click(chromedp.CSS("#invoke")))
	b.until("invoke answer", `document.querySelector("#inv-code") !== null`, 30*time.Second)
	if code := b.text("#inv-code"); !strings.HasPrefix(code, "200") {
		t.Fatalf("invoke in %s = %q, want 200\n%s", ns, code, b.pageText())
	}
	b.until("count", `document.querySelector("#fn-invocations").textContent === "1"`, 10*time.Second)

	// Listed in staging, not in openfaas-fn.
	b.do("default list", chromedp.Click(chromedp.CSS("#nav-functions")))
	b.until("default empty", `location.hash === "#/" && document.querySelector("#functions .empty") !== null`, 15*time.Second)
	if got := b.text("#functions"); strings.Contains(got, fn) {
		t.Errorf("openfaas-fn lists %s: %q", fn, got)
	}
	b.until("chooser", `!document.querySelector("#ns-field").hidden`, 15*time.Second)
	b.choose("#ns", ns)
	b.until("staging list", fmt.Sprintf(`location.hash === "#/ns/staging" && document.querySelector('#functions[data-namespace="staging"] [data-fn=%q]') !== null`, fn), 15*time.Second)
	b.until("staging count", fmt.Sprintf(`document.querySelector('[data-fn=%q] .inv').textContent === "1"`, fn), 15*time.Second)
	if strings.Contains(b.pageText(), value) {
		t.Errorf("functions page shows the secret's value")
	}
	b.screenshot("functions-namespace")

	// Remove from its page: back to the staging list, gone.
	b.do("open", chromedp.Click(chromedp.CSS(fmt.Sprintf(`[data-fn=%q] h2 a`, fn))), chromedp.WaitVisible(chromedp.CSS("#remove")),
		chromedp.Click(chromedp.CSS("#remove")), chromedp.WaitVisible(chromedp.CSS("#confirm-ok")), chromedp.Click(chromedp.CSS("#confirm-ok")))
	b.until("removed", fmt.Sprintf(`location.hash === "#/ns/staging" && document.querySelector("#functions .empty") !== null && document.querySelector('[data-fn=%q]') === null`, fn), 30*time.Second)
}
