package network

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"path/filepath"
	"regexp"
	"strings"
)

// Config describes one ember network. Every field is required.
type Config struct {
	// Name is the CNI network name, unique per daemon (e.g. "ember-ns1").
	// It names the host-local data directory and appears in the comments
	// of the masquerade rules, which is how this package finds them again.
	Name string
	// Bridge is the bridge device name, e.g. "ember0".
	Bridge string
	// Subnet is an IPv4 CIDR, e.g. "10.63.0.0/16". Its first host address
	// goes to the bridge (see Network.Gateway).
	Subnet string
	// BinDirs are the directories searched for the CNI plugins.
	BinDirs []string
	// StateDir is a persistent directory owned by this daemon: host-local
	// keeps IP allocations in StateDir/networks, libcni its result cache in
	// StateDir/cache.
	StateDir string
	// NetNSDir is where named network namespaces are bind-mounted, e.g.
	// /run/ember/<ns>/netns. On tmpfs they vanish with a reboot, as the
	// namespaces themselves do.
	NetNSDir string
}

const (
	cniVersion = "1.0.0"
	// ifName is the interface the replica sees.
	ifName = "eth0"
	// maxIfNameLen is IFNAMSIZ minus the terminating NUL.
	maxIfNameLen = 15
	// maxIDLen keeps an id well below NAME_MAX: it becomes a file name.
	maxIDLen = 200
	// maxNameLen keeps Name readable in iptables comments and paths.
	maxNameLen = 64
)

// plugins are the CNI plugins the generated configuration needs.
var plugins = []string{"bridge", "host-local", "loopback"}

// namePattern is libcni's own rule for network names and container ids. Ids
// also become file names, and the pattern keeps "/" and leading dots out.
var namePattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`)

// validate checks c and returns its subnet.
func (c Config) validate() (netip.Prefix, error) {
	if len(c.Name) > maxNameLen || !namePattern.MatchString(c.Name) {
		return netip.Prefix{}, fmt.Errorf("name %q: want up to %d of [a-zA-Z0-9_.-], not starting with [_.-]: %w", c.Name, maxNameLen, ErrInvalid)
	}
	if len(c.Bridge) > maxIfNameLen || !namePattern.MatchString(c.Bridge) {
		return netip.Prefix{}, fmt.Errorf("bridge %q: want up to %d of [a-zA-Z0-9_.-], not starting with [_.-]: %w", c.Bridge, maxIfNameLen, ErrInvalid)
	}
	subnet, err := netip.ParsePrefix(c.Subnet)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("subnet: %w: %w", err, ErrInvalid)
	}
	switch {
	case !subnet.Addr().Is4():
		return netip.Prefix{}, fmt.Errorf("subnet %s: only IPv4 is supported: %w", subnet, ErrInvalid)
	case subnet != subnet.Masked():
		return netip.Prefix{}, fmt.Errorf("subnet %s: host bits set, did you mean %s: %w", subnet, subnet.Masked(), ErrInvalid)
	case subnet.Bits() > 30:
		// /31 and /32 leave no address for a replica next to the gateway.
		return netip.Prefix{}, fmt.Errorf("subnet %s: want /30 or larger: %w", subnet, ErrInvalid)
	}
	if len(c.BinDirs) == 0 {
		return netip.Prefix{}, fmt.Errorf("bin dirs: none given: %w", ErrInvalid)
	}
	for _, d := range c.BinDirs {
		if !filepath.IsAbs(d) {
			return netip.Prefix{}, fmt.Errorf("bin dir %q: not absolute: %w", d, ErrInvalid)
		}
	}
	if !filepath.IsAbs(c.StateDir) {
		return netip.Prefix{}, fmt.Errorf("state dir %q: not absolute: %w", c.StateDir, ErrInvalid)
	}
	if !filepath.IsAbs(c.NetNSDir) {
		return netip.Prefix{}, fmt.Errorf("netns dir %q: not absolute: %w", c.NetNSDir, ErrInvalid)
	}
	// List treats every file in NetNSDir as an id, so it must not share a
	// directory with host-local's or libcni's files.
	if filepath.Clean(c.NetNSDir) == filepath.Clean(c.StateDir) || within(c.NetNSDir, c.ipamDir()) || within(c.NetNSDir, c.cacheDir()) {
		return netip.Prefix{}, fmt.Errorf("netns dir %q: overlaps state dir %q: %w", c.NetNSDir, c.StateDir, ErrInvalid)
	}
	return subnet, nil
}

// within reports whether dir is parent or below it.
func within(dir, parent string) bool {
	rel, err := filepath.Rel(parent, dir)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// ipamDir is host-local's dataDir; it keeps one directory per network name.
func (c Config) ipamDir() string { return filepath.Join(c.StateDir, "networks") }

// allocDir holds this network's allocations: one file per IP.
func (c Config) allocDir() string { return filepath.Join(c.ipamDir(), c.Name) }

func (c Config) cacheDir() string { return filepath.Join(c.StateDir, "cache") }

func (c Config) netnsPath(id string) string { return filepath.Join(c.NetNSDir, id) }

// conflist is the CNI configuration for c: a bridge with host-local IPAM,
// then loopback. Loopback sits in the same list (it always acts on "lo",
// whatever the interface name, and passes the bridge's result through) so
// that one ADD and one DEL cover an id and libcni keeps one cache entry.
type conflist struct {
	CNIVersion string `json:"cniVersion"`
	Name       string `json:"name"`
	Plugins    []any  `json:"plugins"`
}

type bridgeConf struct {
	Type string `json:"type"`
	// Bridge is created on first ADD if missing.
	Bridge string `json:"bridge"`
	// IsGateway puts the gateway address on the bridge, so replicas can
	// reach the daemon there and route through the host.
	IsGateway bool `json:"isGateway"`
	// IPMasq lets replicas reach the outside world from a private subnet.
	IPMasq bool `json:"ipMasq"`
	// HairpinMode lets a replica reach itself through the bridge.
	HairpinMode bool     `json:"hairpinMode"`
	IPAM        ipamConf `json:"ipam"`
}

type ipamConf struct {
	Type    string          `json:"type"`
	DataDir string          `json:"dataDir"`
	Ranges  [][]ipamRange   `json:"ranges"`
	Routes  []ipamRouteConf `json:"routes"`
}

type ipamRange struct {
	Subnet  string `json:"subnet"`
	Gateway string `json:"gateway"`
}

type ipamRouteConf struct {
	Dst string `json:"dst"`
}

type loopbackConf struct {
	Type string `json:"type"`
}

// conflistJSON renders c's CNI configuration. c must be valid.
func (c Config) conflistJSON(subnet netip.Prefix) ([]byte, error) {
	return json.MarshalIndent(conflist{
		CNIVersion: cniVersion,
		Name:       c.Name,
		Plugins: []any{
			bridgeConf{
				Type:        "bridge",
				Bridge:      c.Bridge,
				IsGateway:   true,
				IPMasq:      true,
				HairpinMode: true,
				IPAM: ipamConf{
					Type:    "host-local",
					DataDir: c.ipamDir(),
					Ranges:  [][]ipamRange{{{Subnet: subnet.String(), Gateway: gateway(subnet).String()}}},
					Routes:  []ipamRouteConf{{Dst: "0.0.0.0/0"}},
				},
			},
			loopbackConf{Type: "loopback"},
		},
	}, "", "  ")
}

// gateway is the first host address of subnet.
func gateway(subnet netip.Prefix) netip.Addr { return subnet.Masked().Addr().Next() }

func validateID(id string) error {
	if len(id) > maxIDLen || !namePattern.MatchString(id) {
		return fmt.Errorf("id %q: want up to %d of [a-zA-Z0-9_.-], not starting with [_.-]: %w", id, maxIDLen, ErrInvalid)
	}
	return nil
}
