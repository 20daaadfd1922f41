package network

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// BridgeConflictError is a device of the bridge's name that the bridge
// plugin cannot use: it is not a bridge, or it holds an IPv4 address other
// than the one the subnet gives it. Every CNI ADD would fail until someone
// removes the device or the daemon is given another bridge or subnet, so
// New refuses to start rather than let creates fail forever.
type BridgeConflictError struct {
	Bridge string
	// NotBridge is set when the device is some other kind of link.
	NotBridge bool
	// Has is the device's IPv4 addresses, as the kernel lists them.
	Has []netip.Prefix
	// Subnet is the configured subnet and Want the address it puts on the
	// bridge (its first host address, with the subnet's length).
	Subnet, Want netip.Prefix
}

func (e *BridgeConflictError) Error() string {
	if e.NotBridge {
		return fmt.Sprintf("device %s exists but is not a bridge", e.Bridge)
	}
	return fmt.Sprintf("bridge %s has %s but subnet %s wants %s", e.Bridge, joinPrefixes(e.Has), e.Subnet, e.Want)
}

// Subnets are the subnets of the bridge's addresses: a subnet with which
// the bridge would be usable as it is.
func (e *BridgeConflictError) Subnets() []netip.Prefix {
	out := make([]netip.Prefix, 0, len(e.Has))
	for _, p := range e.Has {
		out = append(out, p.Masked())
	}
	return out
}

func joinPrefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

// CheckBridge returns a *BridgeConflictError if the bridge device exists
// in a state the bridge plugin refuses. A missing bridge is fine: the
// first Attach creates it.
func (n *Network) CheckBridge() error {
	return checkBridge(n.cfg.Bridge, n.subnet)
}

func checkBridge(name string, subnet netip.Prefix) error {
	link, err := netlinksafe.LinkByName(name)
	if errors.As(err, &netlink.LinkNotFoundError{}) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("bridge %s: %w", name, err)
	}
	// The addresses come from an RTM_GETADDR dump, in the kernel's order,
	// read as the plugin reads them.
	addrs, err := netlinksafe.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("bridge %s: addresses: %w", name, err)
	}
	var has []netip.Prefix
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		ones, _ := a.Mask.Size()
		if ip = ip.Unmap(); ip.Is4() {
			has = append(has, netip.PrefixFrom(ip, ones))
		}
	}
	if c := bridgeConflict(name, link.Type() == "bridge", has, subnet); c != nil {
		return c
	}
	return nil
}

// bridgeConflict mirrors the bridge plugin's checks (ensureBridge and
// ensureAddr, without forceAddress): the device must be a bridge, and its
// first IPv4 address, if it has any, must be the gateway address; the
// plugin stops at the first one that is not.
func bridgeConflict(name string, isBridge bool, has []netip.Prefix, subnet netip.Prefix) *BridgeConflictError {
	want := netip.PrefixFrom(gateway(subnet), subnet.Bits())
	if !isBridge {
		return &BridgeConflictError{Bridge: name, NotBridge: true, Has: has, Subnet: subnet, Want: want}
	}
	if len(has) > 0 && has[0] != want {
		return &BridgeConflictError{Bridge: name, Has: has, Subnet: subnet, Want: want}
	}
	return nil
}

// deleteBridge deletes the bridge device name, if there is one. It refuses
// to delete a device that is not a bridge, so that a mistyped Config cannot
// take down the host's uplink.
func deleteBridge(name string) error {
	link, err := netlinksafe.LinkByName(name)
	if errors.As(err, &netlink.LinkNotFoundError{}) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete bridge %s: %w", name, err)
	}
	if link.Type() != "bridge" {
		return fmt.Errorf("delete bridge %s: not a bridge but a %s", name, link.Type())
	}
	// ENODEV: gone since the lookup, which is what was wanted.
	if err := netlink.LinkDel(link); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete bridge %s: %w", name, err)
	}
	return nil
}
