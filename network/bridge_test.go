package network

import (
	"net/netip"
	"testing"
)

func TestBridgeConflict(t *testing.T) {
	subnet := netip.MustParsePrefix("10.63.0.0/16")
	p := netip.MustParsePrefix
	tests := []struct {
		name     string
		isBridge bool
		has      []netip.Prefix
		want     string // "" for no conflict
	}{
		{"no address yet", true, nil, ""},
		{"the gateway address", true, []netip.Prefix{p("10.63.0.1/16")}, ""},
		{"gateway first, then another", true, []netip.Prefix{p("10.63.0.1/16"), p("10.1.0.1/24")}, ""},
		{"another subnet", true, []netip.Prefix{p("10.1.0.1/24")},
			"bridge ember0 has 10.1.0.1/24 but subnet 10.63.0.0/16 wants 10.63.0.1/16"},
		{"same address, other length", true, []netip.Prefix{p("10.63.0.1/24")},
			"bridge ember0 has 10.63.0.1/24 but subnet 10.63.0.0/16 wants 10.63.0.1/16"},
		{"another first, then the gateway", true, []netip.Prefix{p("10.1.0.1/24"), p("10.63.0.1/16")},
			"bridge ember0 has 10.1.0.1/24, 10.63.0.1/16 but subnet 10.63.0.0/16 wants 10.63.0.1/16"},
		{"not a bridge", false, nil, "device ember0 exists but is not a bridge"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := bridgeConflict("ember0", tt.isBridge, tt.has, subnet)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestBridgeConflictSubnets(t *testing.T) {
	err := bridgeConflict("ember0", true, []netip.Prefix{netip.MustParsePrefix("10.1.0.1/24")}, netip.MustParsePrefix("10.63.0.0/16"))
	if got := err.Subnets(); len(got) != 1 || got[0] != netip.MustParsePrefix("10.1.0.0/24") {
		t.Errorf("Subnets() = %v, want [10.1.0.0/24]", got)
	}
}

func TestCheckBridgeMissing(t *testing.T) {
	if err := checkBridge("nosuchbr0", netip.MustParsePrefix("10.63.0.0/16")); err != nil {
		t.Errorf("checkBridge of a missing device = %v, want nil", err)
	}
}
