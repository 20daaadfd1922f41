//go:build integration

package main

import (
	"strings"
	"testing"
	"time"

	"github.com/emberfaas/ember/function"
)

// TestReadyHTTPRollingUpdate rolls a function with a readiness path to a
// version whose path answers 503 under a steady request loop: no request
// fails, only the old replicas serve, and deploy's wait names the path and
// the status.
func TestReadyHTTPRollingUpdate(t *testing.T) {
	e := setup(t)
	d := newDaemon(t, e)
	flags := []string{
		"--label", function.LabelScaleMin + "=2", "--label", function.LabelScaleMax + "=2",
		"--annotation", function.AnnotationReadyPath + "=/_/ready",
		"--annotation", function.AnnotationReadyPeriod + "=1",
	}

	// Refused before anything happens, as on every path into the API.
	_, stderr, err := d.ember(nil, append([]string{"deploy", "echo", "--image", e.echo,
		"--annotation", function.AnnotationReadyInitialDelay + "=soon"}, flags...)...)
	if err == nil || !strings.Contains(stderr, function.AnnotationReadyInitialDelay) {
		t.Fatalf("deploy with a bad initialDelay: err=%v stderr=%q, want a refusal naming the annotation", err, stderr)
	}
	if fns, err := d.client.List(t.Context()); err != nil || len(fns) != 0 {
		t.Fatalf("after a refused deploy: %v %v, want no function", fns, err)
	}

	d.mustEmber(append([]string{"deploy", "echo", "--image", e.echo}, flags...)...)
	d.waitFor("echo", "2 ready", 60*time.Second, exactlyReady(2))
	old := map[string]bool{}
	for _, r := range d.describe("echo").Instances {
		old[r.ID] = true
	}

	l := startLoad(t, d, "echo", 4)
	t0 := time.Now()
	_, stderr, err = d.ember(nil, append([]string{"deploy", "echo", "--image", e.echo2,
		"--env", "READY_STATUS=503", "--timeout", "10s"}, flags...)...)
	t.Logf("update whose readiness fails reported after %s: %s", time.Since(t0).Round(time.Millisecond), strings.TrimSpace(stderr))
	const want = "readiness GET /_/ready answered 503"
	if err == nil || !strings.Contains(stderr, want) {
		t.Errorf("deploy of a never-ready version: err=%v stderr=%q, want it to say %q", err, stderr, want)
	}
	f := d.describe("echo")
	l.stop(t)

	var newOnes int
	for _, r := range f.Instances {
		switch {
		case old[r.ID]:
			if r.State != function.StateReady {
				t.Errorf("old replica %s is %s, want ready", r.ID, r.State)
			}
		default:
			newOnes++
			if r.State != function.StateStarting || r.Message != want {
				t.Errorf("new replica %s: %s %q, want starting with %q", r.ID, r.State, r.Message, want)
			}
		}
	}
	if newOnes == 0 {
		t.Errorf("no replica of the new version: %+v", f.Instances)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.versions) != 1 || l.versions["v1"] == 0 {
		t.Errorf("versions seen %v, want v1 only", l.versions)
	}
	out := d.mustEmber("describe", "echo")
	if !strings.Contains(out, want) {
		t.Errorf("describe does not show %q:\n%s", want, out)
	}
}
