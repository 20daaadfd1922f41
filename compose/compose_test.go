package compose

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/emberfaas/ember/function"
)

func load(t *testing.T, y string) ([]function.Spec, error) {
	t.Helper()
	return Load(t.Context(), File{Name: "compose.yaml", Content: []byte(y), Dir: t.TempDir()})
}

func TestLoad(t *testing.T) {
	got, err := load(t, `
services:
  web:
    image: web:1
    depends_on: [kv]
    cap_add: [NET_ADMIN]
    entrypoint: ["/web"]
    user: "1000:1000"
  kv:
    image: kv
    environment:
      DIR: /data
    command: ["/kv", "-addr", ":9000"]
    ports: ["9000:9000", "0.0.0.0:9001:9000"]
    volumes: ["data:/data", "/srv/seed:/seed:ro"]
    healthcheck: {test: ["CMD", "/kv", "check"], interval: 1s}
    deploy: {resources: {limits: {memory: 64M, cpus: "0.5"}}}
    restart: always
volumes:
  data: {}
`)
	if err != nil {
		t.Fatal(err)
	}
	want := []function.Spec{
		{Kind: function.KindService, Name: "kv", Image: "kv:latest", Env: map[string]string{"DIR": "/data"},
			Limits: &function.Resources{Memory: "67108864", CPU: "500m"},
			Service: &function.Service{
				Command: []string{"/kv", "-addr", ":9000"},
				Mounts:  []function.Mount{{Volume: "data", Target: "/data"}, {Source: "/srv/seed", Target: "/seed", ReadOnly: true}},
				Ports: []function.Port{{HostIP: "127.0.0.1", HostPort: 9000, Port: 9000},
					{HostIP: "0.0.0.0", HostPort: 9001, Port: 9000}},
				Healthcheck: &function.Healthcheck{Test: []string{"/kv", "check"}, Interval: time.Second},
			}},
		{Kind: function.KindService, Name: "web", Image: "web:1", Service: &function.Service{
			Entrypoint: []string{"/web"}, User: "1000:1000", CapAdd: []string{"CAP_NET_ADMIN"}, DependsOn: []string{"kv"}}},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("specs (-want +got):\n%s", d)
	}
}

func TestLoadRefuses(t *testing.T) {
	for name, tc := range map[string]struct{ yaml, want string }{
		"unknown key":      {"services: {a: {image: x, bogus: 1}}", "bogus"},
		"unsupported key":  {"services: {a: {image: x, privileged: true}}", `"privileged"`},
		"build":            {"services: {a: {build: .}}", `"build"`},
		"no image":         {"services: {a: {environment: {A: b}}}", "neither an image"},
		"restart no":       {"services: {a: {image: x, restart: \"no\"}}", `"restart"`},
		"udp":              {"services: {a: {image: x, ports: [\"53:53/udp\"]}}", "TCP only"},
		"no host port":     {"services: {a: {image: x, ports: [\"53\"]}}", "no host port"},
		"bind in /etc":     {"services: {a: {image: x, volumes: [\"/etc/shadow:/s\"]}}", "inside /etc"},
		"bind root":        {"services: {a: {image: x, volumes: [\"/:/host\"]}}", "inside /"},
		"anonymous volume": {"services: {a: {image: x, volumes: [\"/data\"]}}", "anonymous"},
		"undeclared":       {"services: {a: {image: x, volumes: [\"v:/data\"]}}", "v"},
		"network":          {"services: {a: {image: x, networks: [n]}}\nnetworks: {n: {}}", "n"},
		"secrets":          {"services: {a: {image: x}}\nsecrets: {s: {file: ./s}}", `"secrets"`},
		"volume driver":    {"services: {a: {image: x, volumes: [\"v:/d\"]}}\nvolumes: {v: {driver: nfs}}", `"driver"`},
		"tmpfs":            {"services: {a: {image: x, tmpfs: [/run]}}", `"tmpfs"`},
		"deploy replicas":  {"services: {a: {image: x, deploy: {replicas: 3}}}", `"replicas"`},
		"reservations":     {"services: {a: {image: x, deploy: {resources: {reservations: {memory: 1G}}}}}", `"reservations"`},
		"missing dep":      {"services: {a: {image: x, depends_on: [b]}}", "b"},
		"bad name":         {"services: {A_b: {image: x}}", "DNS-1123"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := load(t, tc.yaml)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %s", err, tc.want)
			}
		})
	}
}
