package api_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/emberfaas/ember/api/wire"
	"github.com/emberfaas/ember/function"
)

// fakeServiceHost publishes ports in a map; busy ports and missing images
// are refused as the daemon refuses them.
type fakeServiceHost struct {
	mu        sync.Mutex // guards below
	busy      map[int]bool
	published map[string][]function.Port
	removed   []string
}

func newFakeServiceHost() *fakeServiceHost {
	return &fakeServiceHost{busy: map[int]bool{}, published: map[string][]function.Port{}}
}

func (h *fakeServiceHost) EnsureImage(_ context.Context, ref string) (string, error) {
	if strings.HasPrefix(ref, "missing") {
		return "", fmt.Errorf("pull %s: %w", ref, function.ErrImageNotFound)
	}
	return "sha256:x", nil
}

func (h *fakeServiceHost) CheckMounts(function.Spec) error { return nil }

func (h *fakeServiceHost) RemoveVolume(name string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.removed = append(h.removed, name)
	return nil
}

func (h *fakeServiceHost) CheckPorts(_ string, ports []function.Port) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range ports {
		if h.busy[p.HostPort] {
			return fmt.Errorf("%w: port %d is not free", function.ErrInvalid, p.HostPort)
		}
	}
	return nil
}

func (h *fakeServiceHost) PublishPorts(name string, ports []function.Port) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.published[name] = ports
	return nil
}

func (h *fakeServiceHost) UnpublishPorts(name string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.published, name)
}

func svcSpec(name, image string, port int) function.Spec {
	s := function.Spec{Kind: function.KindService, Name: name, Image: image, Service: &function.Service{
		Mounts: []function.Mount{{Volume: name + "-data", Target: "/data"}}}}
	if port > 0 {
		s.Service.Ports = []function.Port{{HostIP: "127.0.0.1", HostPort: port, Port: port}}
	}
	return s
}

func TestServicesUp(t *testing.T) {
	s := newServer(t, false)
	up := wire.ServicesUp{Services: []function.Spec{svcSpec("db", "db:1", 5432), svcSpec("cache", "cache:1", 0)}}
	if r := s.call(t, http.MethodPost, "/system/services", up); r.code != http.StatusOK ||
		!strings.Contains(r.body, `"name":"db","action":"created"`) {
		t.Fatalf("up: %d %s", r.code, r.body)
	}
	up.Services[1].Image = "cache:2"
	r := s.call(t, http.MethodPost, "/system/services", up)
	if !strings.Contains(r.body, `"name":"db","action":"unchanged"`) || !strings.Contains(r.body, `"name":"cache","action":"recreated"`) {
		t.Fatalf("second up: %d %s", r.code, r.body)
	}
	if got := s.fns.deployCalls(); got != 3 {
		t.Errorf("deploys = %d, want 3: an unchanged service is not deployed again", got)
	}
	if r := s.call(t, http.MethodGet, "/system/functions", nil); strings.Contains(r.body, "db") {
		t.Errorf("function list shows services: %s", r.body)
	}
	if r := s.call(t, http.MethodGet, "/system/services", nil); !strings.Contains(r.body, `"name":"db"`) {
		t.Errorf("service list: %s", r.body)
	}
	if r := s.call(t, http.MethodDelete, "/system/functions", map[string]string{"functionName": "db"}); r.code != http.StatusNotFound {
		t.Errorf("delete a service as a function: %d %s, want 404", r.code, r.body)
	}
	if r := s.call(t, http.MethodDelete, "/system/services/db?volumes=true", nil); r.code != http.StatusAccepted {
		t.Fatalf("down: %d %s", r.code, r.body)
	}
	s.host.mu.Lock()
	removed, published := slices.Clone(s.host.removed), s.host.published["db"] != nil
	s.host.mu.Unlock()
	if !slices.Equal(removed, []string{"db-data"}) {
		t.Errorf("volumes removed = %v, want [db-data]", removed)
	}
	if published {
		t.Errorf("db's ports still published after down")
	}
}

func TestServicesUpRefusesBeforeCreating(t *testing.T) {
	for name, tc := range map[string]struct {
		specs []function.Spec
		want  string
	}{
		"port in use":   {[]function.Spec{svcSpec("a", "a:1", 0), svcSpec("b", "b:1", 6000)}, "not free"},
		"missing image": {[]function.Spec{svcSpec("a", "a:1", 0), svcSpec("b", "missing:1", 0)}, "missing"},
		"a function":    {[]function.Spec{{Name: "b", Image: "b:1"}}, "not a service"},
		"same port":     {[]function.Spec{svcSpec("a", "a:1", 7000), svcSpec("b", "b:1", 7000)}, "both"},
	} {
		t.Run(name, func(t *testing.T) {
			s := newServer(t, false)
			s.host.mu.Lock()
			s.host.busy[6000] = true
			s.host.mu.Unlock()
			r := s.call(t, http.MethodPost, "/system/services", wire.ServicesUp{Services: tc.specs})
			if r.code != http.StatusBadRequest || !strings.Contains(r.body, tc.want) {
				t.Fatalf("up: %d %s, want 400 naming %s", r.code, r.body, tc.want)
			}
			if got := s.fns.deployCalls(); got != 0 {
				t.Errorf("deploys = %d, want none", got)
			}
		})
	}
}
