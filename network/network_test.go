package network

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/google/go-cmp/cmp"
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func validConfig(t *testing.T) Config {
	dir := t.TempDir()
	return Config{
		Name:     "ember-test",
		Bridge:   "embt0",
		Subnet:   "10.231.7.0/24",
		BinDirs:  []string{fakePlugins(t)},
		StateDir: filepath.Join(dir, "state"),
		NetNSDir: filepath.Join(dir, "netns"),
	}
}

// fakePlugins returns a directory with empty executables named like the
// plugins, enough for New, which only looks for them.
func fakePlugins(t *testing.T) string {
	dir := t.TempDir()
	for _, p := range plugins {
		if err := os.WriteFile(filepath.Join(dir, p), nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		ok     bool
	}{
		{"valid", func(*Config) {}, true},
		{"name empty", func(c *Config) { c.Name = "" }, false},
		{"name with slash", func(c *Config) { c.Name = "a/b" }, false},
		{"name with quote", func(c *Config) { c.Name = `a"b` }, false},
		{"name leading dot", func(c *Config) { c.Name = ".a" }, false},
		{"name too long", func(c *Config) { c.Name = strings.Repeat("a", 65) }, false},
		{"bridge 15 chars", func(c *Config) { c.Bridge = strings.Repeat("b", 15) }, true},
		{"bridge 16 chars", func(c *Config) { c.Bridge = strings.Repeat("b", 16) }, false},
		{"bridge empty", func(c *Config) { c.Bridge = "" }, false},
		{"bridge with space", func(c *Config) { c.Bridge = "em 0" }, false},
		{"bridge with colon", func(c *Config) { c.Bridge = "em:0" }, false},
		{"subnet empty", func(c *Config) { c.Subnet = "" }, false},
		{"subnet garbage", func(c *Config) { c.Subnet = "10.0.0.0" }, false},
		{"subnet ipv6", func(c *Config) { c.Subnet = "fd00::/64" }, false},
		{"subnet host bits", func(c *Config) { c.Subnet = "10.63.0.1/16" }, false},
		{"subnet /30", func(c *Config) { c.Subnet = "10.63.0.0/30" }, true},
		{"subnet /31", func(c *Config) { c.Subnet = "10.63.0.0/31" }, false},
		{"no bin dirs", func(c *Config) { c.BinDirs = nil }, false},
		{"relative bin dir", func(c *Config) { c.BinDirs = []string{"usr/lib/cni"} }, false},
		{"relative state dir", func(c *Config) { c.StateDir = "state" }, false},
		{"no state dir", func(c *Config) { c.StateDir = "" }, false},
		{"relative netns dir", func(c *Config) { c.NetNSDir = "netns" }, false},
		{"netns dir is state dir", func(c *Config) { c.NetNSDir = c.StateDir + "/" }, false},
		{"netns dir in ipam dir", func(c *Config) { c.NetNSDir = filepath.Join(c.StateDir, "networks", "x") }, false},
		{"netns dir is cache dir", func(c *Config) { c.NetNSDir = filepath.Join(c.StateDir, "cache") }, false},
		{"netns dir under state dir", func(c *Config) { c.NetNSDir = filepath.Join(c.StateDir, "netns") }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig(t)
			tt.change(&c)
			_, err := c.validate()
			if tt.ok && err != nil {
				t.Fatalf("validate: %v", err)
			}
			if !tt.ok && !errors.Is(err, ErrInvalid) {
				t.Fatalf("validate = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestConflist(t *testing.T) {
	c := validConfig(t)
	subnet, err := c.validate()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := c.conflistJSON(subnet)
	if err != nil {
		t.Fatal(err)
	}
	list, err := libcni.ConfListFromBytes(raw)
	if err != nil {
		t.Fatalf("libcni rejects the config: %v\n%s", err, raw)
	}
	if list.Name != c.Name || list.CNIVersion != cniVersion {
		t.Errorf("name, version = %q, %q; want %q, %q", list.Name, list.CNIVersion, c.Name, cniVersion)
	}
	var types []string
	for _, p := range list.Plugins {
		types = append(types, p.Network.Type)
	}
	if want := []string{"bridge", "loopback"}; !slices.Equal(types, want) {
		t.Errorf("plugins = %v, want %v", types, want)
	}

	var bridge map[string]any
	if err := json.Unmarshal(list.Plugins[0].Bytes, &bridge); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"type":        "bridge",
		"bridge":      "embt0",
		"isGateway":   true,
		"ipMasq":      true,
		"hairpinMode": true,
		"ipam": map[string]any{
			"type":    "host-local",
			"dataDir": filepath.Join(c.StateDir, "networks"),
			"ranges":  []any{[]any{map[string]any{"subnet": "10.231.7.0/24", "gateway": "10.231.7.1"}}},
			"routes":  []any{map[string]any{"dst": "0.0.0.0/0"}},
		},
	}
	if diff := cmp.Diff(want, bridge); diff != "" {
		t.Errorf("bridge plugin config (-want +got):\n%s", diff)
	}
}

func TestNew(t *testing.T) {
	c := validConfig(t)
	n, err := New(c, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := n.Gateway(), netip.MustParseAddr("10.231.7.1"); got != want {
		t.Errorf("Gateway() = %v, want %v", got, want)
	}
	for _, d := range []string{c.NetNSDir, filepath.Join(c.StateDir, "networks"), filepath.Join(c.StateDir, "cache")} {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("New did not create %s: %v", d, err)
		}
	}
}

func TestNewMissingPlugin(t *testing.T) {
	c := validConfig(t)
	if err := os.Remove(filepath.Join(c.BinDirs[0], "host-local")); err != nil {
		t.Fatal(err)
	}
	_, err := New(c, testLogger(t))
	if err == nil || !strings.Contains(err.Error(), "host-local") {
		t.Fatalf("New = %v, want an error naming host-local", err)
	}
	if _, err := os.Stat(c.StateDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("failed New created the state dir: %v", err)
	}
}

func TestNewInvalid(t *testing.T) {
	c := validConfig(t)
	c.Bridge = "much-too-long-bridge"
	if _, err := New(c, testLogger(t)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("New = %v, want ErrInvalid", err)
	}
}

// TestListLookupFromDisk checks the re-adoption reads against files laid out
// like host-local's and libcni's, without root.
func TestListLookupFromDisk(t *testing.T) {
	c := validConfig(t)
	n, err := New(c, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	alloc := filepath.Join(c.StateDir, "networks", c.Name)
	if err := os.MkdirAll(alloc, 0o700); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"10.231.7.2":         "fn-a-1\r\neth0",
		"10.231.7.3":         "fn-b-1", // host-local before v0.9 wrote no interface
		"lock":               "",
		"last_reserved_ip.0": "10.231.7.3",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(alloc, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// A netns file for an id without an IP (half an Attach), plus junk.
	for _, name := range []string{"fn-c-1", ".hidden"} {
		if err := os.WriteFile(filepath.Join(c.NetNSDir, name), nil, 0o444); err != nil {
			t.Fatal(err)
		}
	}
	// libcni's cache entries: one of this network whose IP is already
	// released (a DEL that failed after IPAM), one of another network.
	results := filepath.Join(c.StateDir, "cache", "results")
	if err := os.MkdirAll(results, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, e := range []struct{ network, id string }{{c.Name, "fn-d-1"}, {"other", "fn-e-1"}} {
		b, err := json.Marshal(map[string]any{
			"kind":        "cniCacheV1",
			"containerId": e.id,
			"ifName":      ifName,
			"networkName": e.network,
			"result":      map[string]any{"cniVersion": cniVersion, "ips": []any{map[string]any{"address": "10.231.7.4/24"}}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(results, e.network+"-"+e.id+"-"+ifName), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	ids, err := n.List()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"fn-a-1", "fn-b-1", "fn-c-1", "fn-d-1"}, ids); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}

	owners, err := allocationOwners(alloc)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"fn-a-1", "fn-b-1"}, owners); diff != "" {
		t.Errorf("allocationOwners (-want +got):\n%s", diff)
	}

	// A plain file is not a mounted netns: nothing to re-adopt.
	for _, id := range []string{"fn-a-1", "fn-c-1", "fn-d-1", "fn-x", "../etc"} {
		if a, ok := n.Lookup(id); ok {
			t.Errorf("Lookup(%q) = %+v, want none", id, a)
		}
	}
}

func TestAllocationOwnersMissingDir(t *testing.T) {
	owners, err := allocationOwners(filepath.Join(t.TempDir(), "nope"))
	if err != nil || len(owners) != 0 {
		t.Fatalf("allocationOwners = %v, %v; want none, nil", owners, err)
	}
}

func TestInvalidIDs(t *testing.T) {
	n, err := New(validConfig(t), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"", "..", "a/b", "-a", strings.Repeat("x", 201)} {
		if _, err := n.Attach(t.Context(), id); !errors.Is(err, ErrInvalid) {
			t.Errorf("Attach(%q) = %v, want ErrInvalid", id, err)
		}
		if err := n.Detach(t.Context(), id); !errors.Is(err, ErrInvalid) {
			t.Errorf("Detach(%q) = %v, want ErrInvalid", id, err)
		}
	}
}
