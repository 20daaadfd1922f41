//go:build integration

package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A function that never answers gets 504 after its exec_timeout, with a
// body naming it; the gateway's connection to it is closed, and the
// function keeps serving other requests.
func TestHungFunctionTimesOut(t *testing.T) {
	e := setup(t)
	d := newDaemon(t, e)
	d.mustEmber("deploy", "hang", "--image", e.echo, "--env", "exec_timeout=2s")
	d.waitFor("hang", "ready", 60*time.Second, exactlyReady(1))

	start := time.Now()
	resp, err := http.Get(d.url("/function/hang/_/sleep?ms=60000"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	t.Logf("hung call answered %d %q after %s", resp.StatusCode, body, took.Round(time.Millisecond))
	if resp.StatusCode != http.StatusGatewayTimeout {
		t.Errorf("status %d, want 504", resp.StatusCode)
	}
	if want := "function hang did not answer within 2s"; !strings.Contains(string(body), want) {
		t.Errorf("body %q, want it to say %q", body, want)
	}
	if took < 2*time.Second {
		t.Errorf("answered after %s, before the 2s exec_timeout", took)
	}
	if r, _, err := d.call("GET", "/function/hang/", ""); err != nil || r.Version == "" {
		t.Errorf("after the timeout: %+v %v, want the function still serving", r, err)
	}

	// A bad timeout is refused before anything is deployed.
	_, stderr, err := d.ember(nil, "deploy", "bad", "--image", e.echo, "--env", "exec_timeout=soon")
	if err == nil || !strings.Contains(stderr, `exec_timeout="soon"`) {
		t.Errorf("deploy with exec_timeout=soon: err %v, stderr %q; want a refusal naming it", err, stderr)
	}
	if _, _, err := d.ember(nil, "describe", "bad"); err == nil {
		t.Error("the refused function exists")
	}
}
