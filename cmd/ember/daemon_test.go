package main

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"

	"github.com/emberfaas/ember/network"
)

func TestBridgeAdvice(t *testing.T) {
	p := netip.MustParsePrefix
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"other subnet", &network.BridgeConflictError{Bridge: "ember0", Has: []netip.Prefix{p("10.1.0.1/24")}, Subnet: p("10.63.0.0/16"), Want: p("10.63.0.1/16")},
			"bridge ember0 has 10.1.0.1/24 but subnet 10.63.0.0/16 wants 10.63.0.1/16: " +
				"delete it with `ip link delete ember0` if no other program uses it, or start ember with --subnet 10.1.0.0/24"},
		{"not a bridge", fmt.Errorf("check: %w", &network.BridgeConflictError{Bridge: "ember0", NotBridge: true, Subnet: p("10.63.0.0/16"), Want: p("10.63.0.1/16")}),
			"device ember0 exists but is not a bridge: " +
				"start ember with another --bridge, or delete the device with `ip link delete ember0` if no other program uses it"},
		{"something else", errors.New("netlink: permission denied"), "netlink: permission denied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := bridgeAdvice(tt.err)
			if got := err.Error(); got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
			var c *network.BridgeConflictError
			if errors.As(tt.err, &c) && !errors.As(err, &c) {
				t.Errorf("%v does not wrap the conflict", err)
			}
		})
	}
}
