//go:build integration

package network

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
)

// The integration tests need root and the CNI plugins in /usr/lib/cni. They
// make their own bridge ("embt" + 4 random hex digits), pick an unused
// 10.231.x.0/24 and keep all files under t.TempDir(); their traffic only goes
// to addresses on that bridge.

const hostPlugins = "/usr/lib/cni"

// requireHost skips t unless the host can run these tests: root, the CNI
// plugins, iptables and ip. In CI (CI=true or EMBER_REQUIRE_INTEGRATION=1)
// a missing requirement fails the test instead, as itest.RequireHost does
// for the other integration tests (which this package cannot import:
// itest imports network).
func requireHost(t *testing.T) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	for _, p := range plugins {
		if _, err := os.Stat(filepath.Join(hostPlugins, p)); err != nil {
			missing = append(missing, filepath.Join(hostPlugins, p))
		}
	}
	for _, name := range []string{"iptables", "ip"} {
		if _, err := exec.LookPath(name); err != nil {
			missing = append(missing, name+" in PATH")
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := "integration test needs: " + strings.Join(missing, "; ")
	if os.Getenv("CI") == "true" || os.Getenv("EMBER_REQUIRE_INTEGRATION") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

func randomTag(t *testing.T) string {
	b := make([]byte, 2)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// freeSubnet picks a 10.231.x.0/24 that no local address is in.
func freeSubnet(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for range 100 {
		b := make([]byte, 1)
		if _, err := rand.Read(b); err != nil {
			t.Fatal(err)
		}
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 231, b[0], 0}), 24)
		clash := false
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok {
				ap, err := netip.ParsePrefix(ipn.String())
				clash = clash || err == nil && ap.Masked().Overlaps(p)
			}
		}
		if !clash {
			return p.String()
		}
	}
	t.Fatal("no free 10.231.x.0/24")
	return ""
}

// newIntegrationNetwork makes a Network with its own bridge, subnet and
// directories, and tears it down when the test ends, checking that the
// bridge and every masquerade rule of its name are gone.
func newIntegrationNetwork(t *testing.T, binDirs ...string) (*Network, Config) {
	t.Helper()
	requireHost(t)
	if len(binDirs) == 0 {
		binDirs = []string{hostPlugins}
	}
	tag := randomTag(t)
	dir := t.TempDir()
	cfg := Config{
		Name:     "embt-" + tag,
		Bridge:   "embt" + tag,
		Subnet:   freeSubnet(t),
		BinDirs:  binDirs,
		StateDir: filepath.Join(dir, "state"),
		NetNSDir: filepath.Join(dir, "netns"),
	}
	n, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Teardown(context.Background()); err != nil {
			t.Errorf("Teardown: %v", err)
		}
		if out, err := exec.Command("ip", "link", "show", cfg.Bridge).CombinedOutput(); err == nil {
			t.Errorf("bridge %s still there after Teardown:\n%s", cfg.Bridge, out)
		}
		if rules := iptablesMentioning(t, `"`+cfg.Name+`"`); len(rules) > 0 {
			t.Errorf("rules of network %s left after Teardown:\n%s", cfg.Name, strings.Join(rules, "\n"))
		}
		// A mounted netns left behind would also break t.TempDir's removal.
		left, _ := readDirNames(cfg.NetNSDir)
		for _, name := range left {
			t.Errorf("netns %s left after Teardown", name)
			_ = removeNetNS(filepath.Join(cfg.NetNSDir, name))
		}
	})
	return n, cfg
}

// iptablesMentioning returns the nat and filter rules that contain s.
func iptablesMentioning(t *testing.T, s string) []string {
	t.Helper()
	var found []string
	for _, table := range []string{"nat", "filter"} {
		out, err := exec.Command("iptables", "-w", "-t", table, "-S").Output()
		if err != nil {
			t.Fatalf("iptables -t %s -S: %v", table, err)
		}
		for line := range strings.Lines(string(out)) {
			if strings.Contains(line, s) {
				found = append(found, table+": "+strings.TrimSpace(line))
			}
		}
	}
	return found
}

// assertAttached checks what an Attach must have set up for a.
func assertAttached(t *testing.T, n *Network, cfg Config, a Attachment) {
	t.Helper()
	subnet := netip.MustParsePrefix(cfg.Subnet)
	if !subnet.Contains(a.IP) || a.IP == n.Gateway() || a.IP == subnet.Addr() {
		t.Errorf("%s: IP %v is not a host address in %s other than the gateway %v", a.ID, a.IP, subnet, n.Gateway())
	}
	if want := filepath.Join(cfg.NetNSDir, a.ID); a.NetNS != want || !isNetNS(a.NetNS) {
		t.Errorf("%s: netns %q (mounted: %v), want a mounted netns at %q", a.ID, a.NetNS, isNetNS(a.NetNS), want)
	}
	if got, ok := n.Lookup(a.ID); !ok || got != a {
		t.Errorf("Lookup(%s) = %+v, %v; want %+v", a.ID, got, ok, a)
	}
	err := ns.WithNetNSPath(a.NetNS, func(ns.NetNS) error {
		for _, name := range []string{"lo", ifName} {
			i, err := net.InterfaceByName(name)
			if err != nil {
				return err
			}
			if i.Flags&net.FlagUp == 0 {
				return fmt.Errorf("%s is down", name)
			}
		}
		return nil
	})
	if err != nil {
		t.Errorf("%s: in its netns: %v", a.ID, err)
	}
	rules := strings.Join(iptablesMentioning(t, `\"`+a.ID+`\"`), "\n")
	if !strings.Contains(rules, "POSTROUTING") || !strings.Contains(rules, "MASQUERADE") {
		t.Errorf("%s: want a POSTROUTING jump and a MASQUERADE rule, got:\n%s", a.ID, rules)
	}
	if !strings.Contains(rules, chainName(cfg.Name, a.ID)) {
		t.Errorf("%s: rules do not use chain %s:\n%s", a.ID, chainName(cfg.Name, a.ID), rules)
	}
}

// assertGone checks that nothing of id is left anywhere this package writes.
func assertGone(t *testing.T, n *Network, cfg Config, id string) {
	t.Helper()
	if _, err := os.Lstat(filepath.Join(cfg.NetNSDir, id)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s: netns file still there (%v)", id, err)
	}
	if a, ok := n.Lookup(id); ok {
		t.Errorf("%s: Lookup still finds %+v", id, a)
	}
	if ids, err := n.List(); err != nil || slices.Contains(ids, id) {
		t.Errorf("%s: List = %v, %v", id, ids, err)
	}
	// Every file host-local and libcni keep, not only the ones this
	// package knows how to parse.
	err := filepath.WalkDir(cfg.StateDir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if strings.Contains(string(b), id) || strings.Contains(path, id) {
			t.Errorf("%s: state file %s still mentions it: %q", id, path, b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// As "iptables -S" prints it; the same id may live on in another Network.
	comment := strings.ReplaceAll(ruleComment(cfg.Name, id), `"`, `\"`)
	if rules := iptablesMentioning(t, comment); len(rules) > 0 {
		t.Errorf("%s: iptables rules left:\n%s", id, strings.Join(rules, "\n"))
	}
	if rules := iptablesMentioning(t, chainName(cfg.Name, id)); len(rules) > 0 {
		t.Errorf("%s: chain left:\n%s", id, strings.Join(rules, "\n"))
	}
}

// assertBridgeEmpty checks that no veth is left on the bridge.
func assertBridgeEmpty(t *testing.T, cfg Config) {
	t.Helper()
	ports, err := os.ReadDir(filepath.Join("/sys/class/net", cfg.Bridge, "brif"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	if len(ports) > 0 {
		t.Errorf("bridge %s still has ports: %v", cfg.Bridge, ports)
	}
}

// listenIn starts a line echo server in the netns at nsPath (or in the
// host's when nsPath is empty) on addr; it stops when the test ends.
func listenIn(t *testing.T, nsPath, addr string) string {
	t.Helper()
	var l net.Listener
	listen := func(ns.NetNS) (err error) {
		l, err = net.Listen("tcp", addr)
		return err
	}
	var err error
	if nsPath == "" {
		err = listen(nil)
	} else {
		// The socket stays in the namespace it was made in.
		err = ns.WithNetNSPath(nsPath, listen)
	}
	if err != nil {
		t.Fatalf("listen in %q: %v", nsPath, err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				line, err := bufio.NewReader(c).ReadString('\n')
				if err == nil {
					_, _ = io.WriteString(c, "echo "+line)
				}
			}()
		}
	}()
	return l.Addr().String()
}

// echoFrom dials addr from the netns at nsPath (the host's when empty) and
// checks that the echo server answers.
func echoFrom(t *testing.T, nsPath, addr string) {
	t.Helper()
	dial := func(ns.NetNS) error {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, "hello\n"); err != nil {
			return err
		}
		got, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return err
		}
		if got != "echo hello\n" {
			return fmt.Errorf("got %q", got)
		}
		return nil
	}
	var err error
	if nsPath == "" {
		err = dial(nil)
	} else {
		err = ns.WithNetNSPath(nsPath, dial)
	}
	if err != nil {
		t.Errorf("echo %s from netns %q: %v", addr, nsPath, err)
	}
}

func TestIntegrationAttachDetach(t *testing.T) {
	n, cfg := newIntegrationNetwork(t)
	ctx := t.Context()
	idA, idB := "fn-"+randomTag(t)+"-a", "fn-"+randomTag(t)+"-b"

	a, err := n.Attach(ctx, idA)
	if err != nil {
		t.Fatal(err)
	}
	b, err := n.Attach(ctx, idB)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("attached %s at %v, %s at %v, gateway %v", a.ID, a.IP, b.ID, b.IP, n.Gateway())
	if a.IP == b.IP {
		t.Fatalf("both ids got %v", a.IP)
	}
	assertAttached(t, n, cfg, a)
	assertAttached(t, n, cfg, b)

	if _, err := n.Attach(ctx, idA); !errors.Is(err, ErrExists) {
		t.Errorf("second Attach(%s) = %v, want ErrExists", idA, err)
	}
	if got, ok := n.Lookup(idA); !ok || got != a {
		t.Errorf("after a refused second Attach, Lookup(%s) = %+v, %v; want %+v", idA, got, ok, a)
	}

	// A restarted daemon re-adopts both from disk.
	n2, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []Attachment{a, b} {
		if got, ok := n2.Lookup(want.ID); !ok || got != want {
			t.Errorf("after restart Lookup(%s) = %+v, %v; want %+v", want.ID, got, ok, want)
		}
	}
	if ids, err := n2.List(); err != nil || !slices.Equal(ids, slices.Sorted(slices.Values([]string{idA, idB}))) {
		t.Errorf("after restart List = %v, %v; want [%s %s]", ids, err, idA, idB)
	}

	// Host to replica, replica to replica over the bridge, and replica to
	// the daemon at the gateway address.
	srvA := listenIn(t, a.NetNS, netip.AddrPortFrom(a.IP, 8080).String())
	echoFrom(t, "", srvA)
	echoFrom(t, b.NetNS, srvA)
	srvHost := listenIn(t, "", netip.AddrPortFrom(n.Gateway(), 0).String())
	echoFrom(t, b.NetNS, srvHost)

	for _, id := range []string{idA, idB} {
		if err := n.Detach(ctx, id); err != nil {
			t.Fatalf("Detach(%s): %v", id, err)
		}
		assertGone(t, n, cfg, id)
		if rules := iptablesMentioning(t, id); len(rules) > 0 {
			t.Errorf("%s: iptables rules left:\n%s", id, strings.Join(rules, "\n"))
		}
	}
	assertBridgeEmpty(t, cfg)
	for _, id := range []string{idA, idB} {
		if err := n.Detach(ctx, id); err != nil {
			t.Errorf("second Detach(%s): %v", id, err)
		}
	}
	if ids, err := n.List(); err != nil || len(ids) != 0 {
		t.Errorf("List after Detach = %v, %v; want none", ids, err)
	}

	// The IP is free again.
	c, err := n.Attach(ctx, idA)
	if err != nil {
		t.Fatal(err)
	}
	assertAttached(t, n, cfg, c)
	// Left attached on purpose: Teardown must detach it.
}

// pluginDir makes a bin dir with links to the host's plugins, in which the
// test can then break one.
func pluginDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, p := range plugins {
		if err := os.Symlink(filepath.Join(hostPlugins, p), filepath.Join(dir, p)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// failAfterBridgeAdd runs the real bridge plugin and then fails every ADD,
// so that there is real state to undo: a veth, an IP, masquerade rules.
const failAfterBridgeAdd = `#!/bin/sh
in=$(cat)
out=$(printf '%s' "$in" | ` + hostPlugins + `/bridge) || { printf '%s' "$out"; exit 1; }
if [ "$CNI_COMMAND" = ADD ]; then
	printf '{"cniVersion":"1.0.0","code":100,"msg":"injected failure after bridge ADD"}'
	exit 1
fi
printf '%s' "$out"
`

func TestIntegrationAttachFailureLeavesNothing(t *testing.T) {
	t.Run("plugin fails after its work", func(t *testing.T) {
		requireHost(t)
		bin := pluginDir(t)
		bridge := filepath.Join(bin, "bridge")
		if err := os.Remove(bridge); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(bridge, []byte(failAfterBridgeAdd), 0o755); err != nil {
			t.Fatal(err)
		}
		n, cfg := newIntegrationNetwork(t, bin)
		id := "fn-" + randomTag(t) + "-fail"
		_, err := n.Attach(t.Context(), id)
		if err == nil || !strings.Contains(err.Error(), "injected failure") {
			t.Fatalf("Attach = %v, want the injected failure", err)
		}
		t.Logf("Attach: %v", err)
		assertGone(t, n, cfg, id)
		assertBridgeEmpty(t, cfg)
	})
	t.Run("plugin missing", func(t *testing.T) {
		requireHost(t)
		bin := pluginDir(t)
		n, cfg := newIntegrationNetwork(t, bin)
		if err := os.Remove(filepath.Join(bin, "bridge")); err != nil {
			t.Fatal(err)
		}
		id := "fn-" + randomTag(t) + "-missing"
		if _, err := n.Attach(t.Context(), id); err == nil {
			t.Fatal("Attach succeeded without the bridge plugin")
		} else {
			t.Logf("Attach: %v", err)
		}
		assertGone(t, n, cfg, id)
	})
	t.Run("context cancelled", func(t *testing.T) {
		n, cfg := newIntegrationNetwork(t)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		id := "fn-" + randomTag(t) + "-cancel"
		if _, err := n.Attach(ctx, id); err == nil {
			t.Fatal("Attach succeeded with a cancelled context")
		}
		assertGone(t, n, cfg, id)
	})
}

// TestIntegrationDetachPartial covers ids whose netns went away behind the
// package's back, and a netns file that was never mounted.
func TestIntegrationDetachPartial(t *testing.T) {
	n, cfg := newIntegrationNetwork(t)
	ctx := t.Context()

	id := "fn-" + randomTag(t) + "-lost"
	a, err := n.Attach(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if err := removeNetNS(a.NetNS); err != nil {
		t.Fatal(err)
	}
	// What the sweep in Detach is for: with the netns gone the bridge
	// plugin's DEL releases the IP but cannot tell which rules were id's.
	comment := strings.ReplaceAll(ruleComment(cfg.Name, id), `"`, `\"`)
	t.Logf("rules of %s with its netns gone, before Detach: %d", id, len(iptablesMentioning(t, comment)))
	if ids, err := n.List(); err != nil || !slices.Contains(ids, id) {
		t.Errorf("List = %v, %v; want the IP allocation of %s listed", ids, err, id)
	}
	if err := n.Detach(ctx, id); err != nil {
		t.Fatal(err)
	}
	assertGone(t, n, cfg, id)

	half := "fn-" + randomTag(t) + "-half"
	if err := os.WriteFile(filepath.Join(cfg.NetNSDir, half), nil, 0o444); err != nil {
		t.Fatal(err)
	}
	if err := n.Detach(ctx, half); err != nil {
		t.Fatal(err)
	}
	assertGone(t, n, cfg, half)
}

// TestIntegrationCoexist runs two Networks side by side, attaches the same
// id to both, and checks that tearing one down leaves the other working.
func TestIntegrationCoexist(t *testing.T) {
	n1, cfg1 := newIntegrationNetwork(t)
	n2, cfg2 := newIntegrationNetwork(t)
	ctx := t.Context()
	id := "fn-" + randomTag(t)

	a1, err := n1.Attach(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	a2, err := n2.Attach(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	assertAttached(t, n1, cfg1, a1)
	assertAttached(t, n2, cfg2, a2)

	if err := n2.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	assertGone(t, n2, cfg2, id)
	if _, err := os.Stat(filepath.Join("/sys/class/net", cfg2.Bridge)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("bridge %s still there after Teardown (%v)", cfg2.Bridge, err)
	}

	assertAttached(t, n1, cfg1, a1)
	echoFrom(t, "", listenIn(t, a1.NetNS, netip.AddrPortFrom(a1.IP, 8080).String()))
	if err := n1.Detach(ctx, id); err != nil {
		t.Fatal(err)
	}
	assertGone(t, n1, cfg1, id)
}

// TestIntegrationConcurrent attaches and detaches many ids at once, starting
// with no bridge, as a burst of cold starts does.
func TestIntegrationConcurrent(t *testing.T) {
	n, cfg := newIntegrationNetwork(t)
	ctx := t.Context()
	tag := randomTag(t)
	const count = 16
	ids := make([]string, count)
	atts := make([]Attachment, count)
	errs := make([]error, count)
	var wg sync.WaitGroup
	for i := range count {
		ids[i] = fmt.Sprintf("fn-%s-%02d", tag, i)
		wg.Go(func() { atts[i], errs[i] = n.Attach(ctx, ids[i]) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	seen := map[netip.Addr]string{}
	for _, a := range atts {
		if other, ok := seen[a.IP]; ok {
			t.Errorf("%s and %s both got %v", a.ID, other, a.IP)
		}
		seen[a.IP] = a.ID
		assertAttached(t, n, cfg, a)
	}
	for i := range count {
		wg.Go(func() { errs[i] = n.Detach(ctx, ids[i]) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		assertGone(t, n, cfg, id)
	}
	assertBridgeEmpty(t, cfg)
}

// TestIntegrationBridgeConflict puts a device of the bridge's name in the
// plugin's way: CheckBridge must say what is wrong, Attach must fail with
// the same words and leave nothing, and Teardown must never delete a device
// that is not a bridge.
func TestIntegrationBridgeConflict(t *testing.T) {
	t.Run("not a bridge", func(t *testing.T) {
		n, cfg := newIntegrationNetwork(t)
		// A veth pair (the dummy module is not everywhere); deleting one
		// end deletes both.
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: cfg.Bridge}, PeerName: "embp" + randomTag(t)}
		if err := netlink.LinkAdd(veth); err != nil {
			t.Fatal(err)
		}
		// Registered after newIntegrationNetwork's, so it runs before its
		// Teardown.
		t.Cleanup(func() {
			if err := netlink.LinkDel(veth); err != nil {
				t.Errorf("delete veth %s: %v", cfg.Bridge, err)
			}
		})
		want := fmt.Sprintf("device %s exists but is not a bridge", cfg.Bridge)
		var c *BridgeConflictError
		if err := n.CheckBridge(); !errors.As(err, &c) || c.Error() != want {
			t.Errorf("CheckBridge = %v, want %q", err, want)
		}
		id := "fn-" + randomTag(t) + "-dummy"
		if _, err := n.Attach(t.Context(), id); !errors.As(err, &c) || c.Error() != want {
			t.Errorf("Attach = %v, want %q", err, want)
		}
		assertGone(t, n, cfg, id)
		if err := deleteBridge(cfg.Bridge); err == nil || !strings.Contains(err.Error(), "not a bridge") {
			t.Errorf("deleteBridge of a veth = %v, want a refusal", err)
		}
		if _, err := netlink.LinkByName(cfg.Bridge); err != nil {
			t.Errorf("the veth is gone: %v", err)
		}
	})
	t.Run("another address", func(t *testing.T) {
		n, cfg := newIntegrationNetwork(t)
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: cfg.Bridge}}
		if err := netlink.LinkAdd(br); err != nil {
			t.Fatal(err)
		}
		// The gateway with a longer prefix: an address no other test uses.
		other := netip.PrefixFrom(n.Gateway(), 25)
		addr, err := netlink.ParseAddr(other.String())
		if err != nil {
			t.Fatal(err)
		}
		if err := netlink.AddrAdd(br, addr); err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("bridge %s has %s but subnet %s wants %s/24", cfg.Bridge, other, cfg.Subnet, n.Gateway())
		var c *BridgeConflictError
		if err := n.CheckBridge(); !errors.As(err, &c) || c.Error() != want {
			t.Errorf("CheckBridge = %v, want %q", err, want)
		}
		id := "fn-" + randomTag(t) + "-addr"
		if _, err := n.Attach(t.Context(), id); !errors.As(err, &c) || c.Error() != want {
			t.Errorf("Attach = %v, want %q", err, want)
		}
		assertGone(t, n, cfg, id)
		// newIntegrationNetwork's Teardown must delete this bridge.
	})
}

// A service's next replica asks for its predecessor's address and gets it
// once that one is detached; while another id holds it, the answer says so
// and leaves nothing behind.
func TestIntegrationAttachAt(t *testing.T) {
	n, cfg := newIntegrationNetwork(t)
	ctx := t.Context()
	idA, idB, idC := "svc-"+randomTag(t)+"-a", "svc-"+randomTag(t)+"-b", "svc-"+randomTag(t)+"-c"
	a, err := n.Attach(ctx, idA)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.AttachAt(ctx, idB, a.IP); !errors.Is(err, ErrAddrTaken) {
		t.Fatalf("AttachAt(%s, %v) while %s holds it = %v, want ErrAddrTaken", idB, a.IP, idA, err)
	}
	assertGone(t, n, cfg, idB)
	if _, err := n.AttachAt(ctx, idB, n.Gateway()); !errors.Is(err, ErrInvalid) {
		t.Errorf("AttachAt(gateway) = %v, want ErrInvalid", err)
	}
	if err := n.Detach(ctx, idA); err != nil {
		t.Fatal(err)
	}
	// Another id takes the next free address meanwhile: host-local would
	// have given it a.IP again without the request had a.IP been last.
	c, err := n.Attach(ctx, idC)
	if err != nil {
		t.Fatal(err)
	}
	b, err := n.AttachAt(ctx, idB, a.IP)
	if err != nil {
		t.Fatal(err)
	}
	if b.IP != a.IP || c.IP == a.IP {
		t.Fatalf("AttachAt gave %v (want %v), the other id %v", b.IP, a.IP, c.IP)
	}
	// The address comes back with its MAC, so that neighbour caches stay
	// true.
	if got, want := macIn(t, b.NetNS), macFor(a.IP).String(); got != want {
		t.Errorf("MAC at %v = %s, want %s", b.IP, got, want)
	}
	assertAttached(t, n, cfg, b)
	srv := listenIn(t, b.NetNS, netip.AddrPortFrom(b.IP, 8080).String())
	echoFrom(t, c.NetNS, srv)
}

func macIn(t *testing.T, nsPath string) string {
	t.Helper()
	var mac string
	err := ns.WithNetNSPath(nsPath, func(ns.NetNS) error {
		l, err := net.InterfaceByName(ifName)
		if err != nil {
			return err
		}
		mac = l.HardwareAddr.String()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return mac
}
