package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/emberfaas/ember/api/wire"
	"github.com/emberfaas/ember/function"
)

// unused lets statusFns satisfy Functions (an embedded field may not be
// named like a method); status calls none of the methods it promotes.
type unused = Functions

// statusFns is the part of Functions that status uses.
type statusFns struct {
	unused
	specs  []function.Spec
	status map[string]function.Status
}

func (f statusFns) Functions() []function.Spec { return f.specs }

func (f statusFns) Status(name string) (function.Status, error) {
	st, ok := f.status[name]
	if !ok {
		return function.Status{}, function.ErrNotFound
	}
	return st, nil
}

func replicas(states ...function.State) []function.Replica {
	var out []function.Replica
	for _, s := range states {
		out = append(out, function.Replica{State: s})
	}
	return out
}

func TestSystemStatus(t *testing.T) {
	started := time.Now().Add(-90 * time.Second)
	fns := statusFns{
		specs: []function.Spec{{Name: "a"}, {Name: "b"}, {Name: "c"}, {Name: "gone"}},
		status: map[string]function.Status{
			"a": {Phase: "active", Replicas: replicas(function.StateReady, function.StateReady, function.StateStarting)},
			"b": {Phase: "zero", Replicas: replicas(function.StateZero)},
			"c": {Replicas: replicas(function.StateExited)}, // no phase: active
		},
	}
	for _, tc := range []struct {
		name       string
		containerd func(context.Context) (string, error)
		want       wire.ContainerdStatus
	}{
		{"containerd answers", func(context.Context) (string, error) { return "1.6.20", nil },
			wire.ContainerdStatus{Socket: "/run/containerd/containerd.sock", Namespace: "ember", Version: "1.6.20"}},
		{"containerd down", func(context.Context) (string, error) { return "", errors.New("connection refused") },
			wire.ContainerdStatus{Socket: "/run/containerd/containerd.sock", Namespace: "ember", Error: "connection refused"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := New(Config{Version: "v1", Commit: "abc", User: "admin", Password: "pw", Status: StatusConfig{
				Started: started, Containerd: tc.containerd, ContainerdSocket: "/run/containerd/containerd.sock",
				Namespace: "ember", Bridge: "ember0", Subnet: "10.63.0.0/16", StateDir: "/var/lib/ember",
				Listen: "0.0.0.0:8080", Socket: "/run/ember/ember.sock",
			}}, Deps{Functions: fns}, nil)
			srv := httptest.NewServer(a.Handler(false))
			defer srv.Close()
			resp, err := http.Get(srv.URL + "/system/status")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			var got wire.SystemStatus
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatal(err)
			}
			if got.UptimeSeconds < 89 || got.UptimeSeconds > 100 {
				t.Errorf("uptime %ds, want about 90", got.UptimeSeconds)
			}
			if !got.Started.Equal(started) {
				t.Errorf("started %v, want %v", got.Started, started)
			}
			got.UptimeSeconds, got.Started = 0, time.Time{}
			want := wire.SystemStatus{
				Version: "v1", Commit: "abc", Containerd: tc.want,
				Bridge: "ember0", Subnet: "10.63.0.0/16", StateDir: "/var/lib/ember",
				Listen: "0.0.0.0:8080", Socket: "/run/ember/ember.sock",
				Functions: wire.Counts{Total: 3, ByState: map[string]int{"active": 2, "zero": 1}},
				Replicas:  wire.Counts{Total: 5, ByState: map[string]int{"ready": 2, "starting": 1, "zero": 1, "exited": 1}},
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("status (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSystemStatusNeedsAuthOnTCP(t *testing.T) {
	a := New(Config{User: "admin", Password: "pw"}, Deps{Functions: statusFns{}}, nil)
	srv := httptest.NewServer(a.Handler(true))
	defer srv.Close()
	for _, tc := range []struct {
		user, pass string
		want       int
	}{
		{"", "", http.StatusUnauthorized},
		{"admin", "wrong", http.StatusUnauthorized},
		{"admin", "pw", http.StatusOK},
	} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/system/status", nil)
		if tc.user != "" {
			req.SetBasicAuth(tc.user, tc.pass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s:%s: status %d, want %d", tc.user, tc.pass, resp.StatusCode, tc.want)
		}
	}
}
