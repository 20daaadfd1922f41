package network

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
)

var (
	// ErrInvalid is returned (wrapped) for a bad Config or id.
	ErrInvalid = errors.New("invalid")
	// ErrExists is returned (wrapped) by Attach when the id already has a
	// network namespace: attach it again only after Detach.
	ErrExists = errors.New("already attached")
	// ErrAddrTaken is returned (wrapped) by AttachAt when the address asked
	// for is held by another id.
	ErrAddrTaken = errors.New("address taken")
)

// SubnetFullError is CNI finding no free address in the subnet: every
// address is held by a replica (or leaked), and only a larger subnet or
// fewer replicas helps. FullSubnet lets a consumer recognise it through
// an interface of its own, without importing this package.
type SubnetFullError struct {
	Subnet netip.Prefix
	Err    error
}

func (e *SubnetFullError) Error() string {
	return fmt.Sprintf("subnet %s has no free address: %v", e.Subnet, e.Err)
}

func (e *SubnetFullError) Unwrap() error { return e.Err }

// FullSubnet is the subnet that has no free address.
func (e *SubnetFullError) FullSubnet() netip.Prefix { return e.Subnet }

// undoTimeout bounds the clean-up after a failed Attach, which runs even
// when the caller's context is already done.
const undoTimeout = 30 * time.Second

// Attachment is one id's place on the network.
type Attachment struct {
	ID    string
	IP    netip.Addr
	NetNS string // path of the bind-mounted network namespace
}

// Network attaches ids to one CNI bridge network.
//
// Its methods may be called concurrently, but not for the same id: the
// caller serialises Attach and Detach of one id.
type Network struct {
	cfg     Config
	subnet  netip.Prefix
	cni     *libcni.CNIConfig
	conf    *libcni.NetworkConfigList
	masq    masq
	log     *slog.Logger
	gateway netip.Addr
}

// New validates cfg, checks that the plugins and iptables are installed and
// creates cfg's directories. It changes nothing else on the host: the bridge
// appears with the first Attach.
func New(cfg Config, log *slog.Logger) (*Network, error) {
	subnet, err := cfg.validate()
	if err != nil {
		return nil, fmt.Errorf("network config: %w", err)
	}
	for _, p := range plugins {
		if _, err := invoke.FindInPath(p, cfg.BinDirs); err != nil {
			return nil, fmt.Errorf("cni plugin: %w", err)
		}
	}
	// The bridge plugin runs iptables for ipMasq; so does the clean-up here.
	masq, err := newMasq()
	if err != nil {
		return nil, fmt.Errorf("ip masquerade: %w", err)
	}
	raw, err := cfg.conflistJSON(subnet)
	if err != nil {
		return nil, fmt.Errorf("cni config: %w", err)
	}
	conf, err := libcni.ConfListFromBytes(raw)
	if err != nil {
		return nil, fmt.Errorf("cni config: %w", err)
	}
	for _, d := range []string{cfg.ipamDir(), cfg.cacheDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("state dir: %w", err)
		}
	}
	if err := os.MkdirAll(cfg.NetNSDir, 0o755); err != nil {
		return nil, fmt.Errorf("netns dir: %w", err)
	}
	exe := &invoke.DefaultExec{
		RawExec:       &invoke.RawExec{Stderr: stderrLog{log}},
		PluginDecoder: version.PluginDecoder{},
	}
	return &Network{
		cfg:     cfg,
		subnet:  subnet,
		cni:     libcni.NewCNIConfigWithCacheDir(cfg.BinDirs, cfg.cacheDir(), exe),
		conf:    conf,
		masq:    masq,
		log:     log,
		gateway: gateway(subnet),
	}, nil
}

// Gateway is the bridge's address, the first host address of the subnet.
// Replicas reach the daemon there.
func (n *Network) Gateway() netip.Addr { return n.gateway }

// Attach creates a network namespace for id, pinned at NetNSDir/id so that it
// outlives any process, and plugs it into the bridge as eth0. On failure it
// undoes everything it did, even if ctx is done.
func (n *Network) Attach(ctx context.Context, id string) (Attachment, error) {
	return n.attach(ctx, id, netip.Addr{})
}

// AttachAt is Attach with the address ip asked of host-local, which gives
// it only if no other id holds it (ErrAddrTaken). A service keeps its
// address from one replica to the next this way, so that the hosts files
// through which functions reach it, and which their resolvers cache, stay
// true.
func (n *Network) AttachAt(ctx context.Context, id string, ip netip.Addr) (Attachment, error) {
	if !n.subnet.Contains(ip) || ip == n.gateway || ip == n.subnet.Masked().Addr() {
		return Attachment{}, fmt.Errorf("attach %s: address %s is not a host address of %s: %w", id, ip, n.subnet, ErrInvalid)
	}
	return n.attach(ctx, id, ip)
}

func (n *Network) attach(ctx context.Context, id string, want netip.Addr) (Attachment, error) {
	if err := validateID(id); err != nil {
		return Attachment{}, fmt.Errorf("attach: %w", err)
	}
	path := n.cfg.netnsPath(id)
	if err := createNetNS(path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			// Someone else's netns (or a leftover the caller must Detach):
			// not ours to undo.
			return Attachment{}, fmt.Errorf("attach %s: %w", id, ErrExists)
		}
		return Attachment{}, fmt.Errorf("attach %s: %w", id, err)
	}
	ip, err := n.add(ctx, id, path, want)
	if err == nil {
		err = setMAC(path, macFor(ip))
	}
	if err != nil {
		// The plugin's own words for a conflicting bridge do not say what
		// to do about it; this does.
		var conflict *BridgeConflictError
		if cerr := n.CheckBridge(); errors.As(cerr, &conflict) {
			err = conflict
		}
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), undoTimeout)
		defer cancel()
		if uerr := n.detach(uctx, id); uerr != nil {
			err = errors.Join(err, fmt.Errorf("undo: %w", uerr))
		}
		return Attachment{}, fmt.Errorf("attach %s: %w", id, err)
	}
	n.log.Debug("attached", "id", id, "ip", ip)
	return Attachment{ID: id, IP: ip, NetNS: path}, nil
}

// add runs CNI ADD for id in the netns at path, asking for want if it is
// valid, and returns the address it got.
func (n *Network) add(ctx context.Context, id, path string, want netip.Addr) (netip.Addr, error) {
	rc := n.runtimeConf(id, path)
	if want.IsValid() {
		// host-local reads the address from CNI_ARGS; the bridge plugin
		// parses them too, and would refuse a key it does not know
		// without IgnoreUnknown.
		rc.Args = [][2]string{{"IgnoreUnknown", "1"}, {"IP", want.String()}}
	}
	res, err := n.cni.AddNetworkList(ctx, n.conf, rc)
	if err != nil {
		// host-local's words for an address held by another id.
		if want.IsValid() && strings.Contains(err.Error(), "not available") {
			return netip.Addr{}, fmt.Errorf("cni add: %s: %w (%w)", want, ErrAddrTaken, err)
		}
		// host-local's words, the only sign of it a plugin's exec gives.
		if strings.Contains(err.Error(), "no IP addresses available") {
			return netip.Addr{}, fmt.Errorf("cni add: %w", &SubnetFullError{Subnet: n.subnet, Err: err})
		}
		return netip.Addr{}, fmt.Errorf("cni add: %w", err)
	}
	ip, err := n.resultIP(res)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("cni add: %w", err)
	}
	if want.IsValid() && ip != want {
		return netip.Addr{}, fmt.Errorf("cni add: asked for %s, got %s", want, ip)
	}
	return ip, nil
}

// macFor is the MAC address of eth0 at ip, derived from it as Docker
// derives its containers': an address that comes back (a service's next
// replica, see AttachAt) comes back with the MAC that neighbour caches on
// the bridge hold for it. With a random one those entries would send the
// address's frames nowhere until they expire, half a minute or more.
func macFor(ip netip.Addr) net.HardwareAddr {
	b := ip.As4()
	return net.HardwareAddr{0x02, 0x65, b[0], b[1], b[2], b[3]} // locally administered
}

// setMAC sets eth0's MAC address in the netns at path. A veth takes a new
// address while up, before the replica's process has sent anything.
func setMAC(path string, mac net.HardwareAddr) error {
	err := ns.WithNetNSPath(path, func(ns.NetNS) error {
		link, err := netlinksafe.LinkByName(ifName)
		if err != nil {
			return err
		}
		return netlink.LinkSetHardwareAddr(link, mac)
	})
	if err != nil {
		return fmt.Errorf("set mac address %s: %w", mac, err)
	}
	return nil
}

// resultIP is the address in the subnet that a CNI result gives eth0.
func (n *Network) resultIP(res types.Result) (netip.Addr, error) {
	r, err := types100.NewResultFromResult(res)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("result: %w", err)
	}
	for _, c := range r.IPs {
		ip, ok := netip.AddrFromSlice(c.Address.IP)
		if ip = ip.Unmap(); ok && n.subnet.Contains(ip) {
			return ip, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("no address in %s in result", n.subnet)
}

// Detach takes id off the network: CNI DEL (which releases its IP), removal
// of any masquerade rules left for id, then the netns. It succeeds for ids
// that are gone or only partly set up, so it is safe to repeat. If it fails,
// id stays in List for a later Detach to finish.
func (n *Network) Detach(ctx context.Context, id string) error {
	if err := validateID(id); err != nil {
		return fmt.Errorf("detach: %w", err)
	}
	if err := n.detach(ctx, id); err != nil {
		return fmt.Errorf("detach %s: %w", id, err)
	}
	n.log.Debug("detached", "id", id)
	return nil
}

// detach undoes as much of Attach as it can and reports what it could not.
// The netns goes even when DEL fails (the veth dies with it); whatever DEL
// left, an IP allocation or libcni's cache entry, keeps id in List, and a
// later detach, which then runs DEL without a netns, finishes the job.
func (n *Network) detach(ctx context.Context, id string) error {
	path := n.cfg.netnsPath(id)
	// Without a live netns (gone, or a file whose bind mount never
	// happened) DEL runs with none, which the CNI spec allows: the plugins
	// still release the IP.
	netns := ""
	if isNetNS(path) {
		netns = path
	}
	var errs []error
	if err := n.cni.DelNetworkList(ctx, n.conf, n.runtimeConf(id, netns)); err != nil {
		errs = append(errs, fmt.Errorf("cni del: %w", err))
	}
	// The bridge plugin removes its masquerade rules only when it finds eth0
	// in a live netns; anything else leaves them behind.
	if err := n.masq.sweepID(ctx, n.cfg.Name, id); err != nil {
		errs = append(errs, fmt.Errorf("ip masquerade: %w", err))
	}
	if err := removeNetNS(path); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (n *Network) runtimeConf(id, netns string) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{ContainerID: id, NetNS: netns, IfName: ifName}
}

// Lookup re-adopts id after a daemon restart: it reports id's Attachment if
// its netns is still mounted and libcni still holds the result of its ADD,
// which DEL removes.
func (n *Network) Lookup(id string) (Attachment, bool) {
	if validateID(id) != nil {
		return Attachment{}, false
	}
	path := n.cfg.netnsPath(id)
	if !isNetNS(path) {
		return Attachment{}, false
	}
	res, err := n.cni.GetNetworkListCachedResult(n.conf, n.runtimeConf(id, path))
	if err != nil {
		n.log.Warn("reading cached cni result", "id", id, "err", err)
		return Attachment{}, false
	}
	if res == nil {
		return Attachment{}, false
	}
	ip, err := n.resultIP(res)
	if err != nil {
		n.log.Warn("reading cached cni result", "id", id, "err", err)
		return Attachment{}, false
	}
	return Attachment{ID: id, IP: ip, NetNS: path}, true
}

// List returns, sorted, every id that owns a netns file, a libcni cache
// entry or an IP allocation, so that the caller can Detach the ones it no
// longer wants. host-local's files are read too because an ADD that failed
// after the bridge plugin's IPAM step, followed by a DEL that failed as
// well, leaves an allocation that libcni never cached.
func (n *Network) List() ([]string, error) {
	ids, err := allocationOwners(n.cfg.allocDir())
	if err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	netns, err := readDirNames(n.cfg.NetNSDir)
	if err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	ids = append(ids, netns...)
	cached, err := n.cni.GetCachedAttachments("")
	if err != nil {
		return nil, fmt.Errorf("list: cni cache: %w", err)
	}
	for _, a := range cached {
		if a.Network == n.cfg.Name && a.IfName == ifName {
			ids = append(ids, a.ContainerID)
		}
	}
	ids = slices.DeleteFunc(ids, func(id string) bool { return validateID(id) != nil })
	slices.Sort(ids)
	return slices.Compact(ids), nil
}

// readDirNames lists dir, which may not exist yet.
func readDirNames(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names, nil
}

// Teardown removes what this Network created host-wide: the bridge and any
// masquerade rules carrying its name. Ids still attached are detached first,
// so that nothing is stranded.
func (n *Network) Teardown(ctx context.Context) error {
	ids, err := n.List()
	if err != nil {
		return fmt.Errorf("teardown: %w", err)
	}
	var errs []error
	for _, id := range ids {
		n.log.Info("detaching leftover", "id", id)
		if err := n.detach(ctx, id); err != nil {
			errs = append(errs, fmt.Errorf("detach %s: %w", id, err))
		}
	}
	if err := n.masq.sweepNetwork(ctx, n.cfg.Name); err != nil {
		errs = append(errs, fmt.Errorf("ip masquerade: %w", err))
	}
	if err := deleteBridge(n.cfg.Bridge); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("teardown: %w", err)
	}
	return nil
}

// stderrLog passes what plugins print on stderr (informational only: errors
// come back on stdout) to the log.
type stderrLog struct{ log *slog.Logger }

func (w stderrLog) Write(p []byte) (int, error) {
	w.log.Debug("cni plugin stderr", "out", strings.TrimSpace(string(p)))
	return len(p), nil
}
