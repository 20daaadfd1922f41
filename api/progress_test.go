package api_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/emberfaas/ember/api/wire"
	"github.com/emberfaas/ember/function"
)

// followDeploy posts a deployment asking for its progress.
func followDeploy(t *testing.T, s *server, query, body string) (int, string, []wire.DeployEvent) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "POST", s.url+"/system/functions"+query, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", wire.ProgressType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var evs []wire.DeployEvent
	dec := json.NewDecoder(resp.Body)
	for dec.More() {
		var ev wire.DeployEvent
		if err := dec.Decode(&ev); err != nil {
			break
		}
		evs = append(evs, ev)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), evs
}

func TestDeployFollowed(t *testing.T) {
	layer := func(done int64) *function.PullProgress {
		return &function.PullProgress{Image: "pulled:1", Layers: []function.LayerProgress{{Digest: "sha256:ab", Done: done, Total: 1024}}}
	}
	t.Run("pull, deployed, ready", func(t *testing.T) {
		s := newServer(t, false)
		code, ct, evs := followDeploy(t, s, "?wait=5s", `{"service":"echo","image":"pulled:1"}`)
		want := []wire.DeployEvent{{Stage: "pull", Pull: layer(512)}, {Stage: "pull", Pull: layer(1024)}, {Stage: "deployed"}, {Stage: "ready"}}
		if code != http.StatusOK || ct != wire.ProgressType {
			t.Errorf("answer %d %q, want 200 %s", code, ct, wire.ProgressType)
		}
		if d := cmp.Diff(want, evs); d != "" {
			t.Errorf("events (-want +got):\n%s", d)
		}
	})
	t.Run("not ready: an error event", func(t *testing.T) {
		s := newServer(t, false)
		s.fns.waitErr = errors.New("echo not ready: crash-looping: process exited: exit code 3")
		_, _, evs := followDeploy(t, s, "?wait=5s", `{"service":"echo","image":"echo:1"}`)
		want := []wire.DeployEvent{{Stage: "deployed"}, {Stage: "error", Code: http.StatusGatewayTimeout, Error: s.fns.waitErr.Error()}}
		if d := cmp.Diff(want, evs); d != "" {
			t.Errorf("events (-want +got):\n%s", d)
		}
	})
	t.Run("refused before anything: a plain status", func(t *testing.T) {
		s := newServer(t, false)
		code, ct, _ := followDeploy(t, s, "", `{"service":"echo","image":"missing:1"}`)
		if code != http.StatusBadRequest || strings.Contains(ct, wire.ProgressType) {
			t.Errorf("answer %d %q, want 400 and no stream", code, ct)
		}
	})
	t.Run("faas-cli's plain POST is OpenFaaS's", func(t *testing.T) {
		s := newServer(t, false)
		r := s.call(t, "POST", "/system/functions", map[string]any{"service": "echo", "image": "pulled:1"})
		if r.code != http.StatusAccepted || r.body != "" {
			t.Errorf("plain POST = %d %q, want 202 and no body", r.code, r.body)
		}
	})
}
