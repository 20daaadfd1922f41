package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/emberfaas/ember/api"
	"github.com/emberfaas/ember/api/wire"
	"github.com/emberfaas/ember/network"
	"github.com/emberfaas/ember/proxy"
	"github.com/emberfaas/ember/queue"
	"github.com/emberfaas/ember/runtime"
	"github.com/emberfaas/ember/scale"
	"github.com/emberfaas/ember/store"
	"github.com/emberfaas/ember/ui"
)

type daemonOptions struct {
	Listen             string
	Socket             string
	StateDir           string
	RunDir             string
	ContainerdSocket   string
	RuncRoot           string
	Namespace          string
	Bridge             string
	Subnet             string
	CNIBinDir          string
	InsecureRegistries []string
	Nameservers        []string
	Auth               bool
	HealthInterval     time.Duration
	CountFlush         time.Duration
	WakeTimeout        time.Duration
	DrainTimeout       time.Duration
	UpstreamTimeout    time.Duration
	MaxWaiting         int
	CPUBrake           float64
	LogMaxSize         int64
	LogMaxFiles        int
	LogLevel           string
	Pprof              string
	NATSURL            string
	AsyncMaxBody       int64
	AsyncMaxCalls      int64
	AsyncAckWait       time.Duration
	// Limits protect the TCP listener from slow and idle clients.
	Limits serverLimits
}

func newDaemonCmd() *cobra.Command {
	var o daemonOptions
	cmd := &cobra.Command{
		Use:   "daemon",
		Short: "Run the ember daemon (as root, usually from systemd)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Socket, _ = cmd.Flags().GetString("socket")
			return runDaemon(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Listen, "listen", "0.0.0.0:8080", "TCP address of the gateway and API")
	f.StringVar(&o.StateDir, "state-dir", "/var/lib/ember", "directory for ember's state: store, logs, credentials")
	f.StringVar(&o.RunDir, "run-dir", "/run/ember", "directory for runtime files that end with a reboot (network namespaces, replicas' raw output)")
	f.StringVar(&o.ContainerdSocket, "containerd-socket", "/run/containerd/containerd.sock", "containerd's gRPC socket")
	f.StringVar(&o.RuncRoot, "runc-root", "", "runc state directory (default: containerd's)")
	f.StringVar(&o.Namespace, "namespace", "ember", "containerd namespace for ember's images and containers")
	f.StringVar(&o.Bridge, "bridge", "ember0", "name of the bridge functions are attached to")
	f.StringVar(&o.Subnet, "subnet", "10.63.0.0/16", "subnet for function IPs")
	f.StringVar(&o.CNIBinDir, "cni-bin-dir", "", "directory of the CNI plugins (default: the first of /opt/cni/bin, /usr/lib/cni that holds bridge)")
	f.StringSliceVar(&o.InsecureRegistries, "insecure-registry", nil, "registry host reached over plain HTTP (repeatable; localhost and 127.0.0.1 always are)")
	f.StringSliceVar(&o.Nameservers, "nameserver", nil, "DNS server for functions (repeatable; default: the host's, without loopback stubs)")
	f.BoolVar(&o.Auth, "auth", true, "require HTTP basic auth for /system/* on TCP")
	f.DurationVar(&o.HealthInterval, "health-interval", 5*time.Second, "how often ready replicas' lock files are checked")
	f.DurationVar(&o.CountFlush, "count-flush", 10*time.Second, "how often invocation counts are written to the state dir; a daemon killed outright loses at most this much of them")
	f.DurationVar(&o.WakeTimeout, "wake-timeout", 30*time.Second, "how long a request waits for a ready replica")
	f.IntVar(&o.MaxWaiting, "wake-queue", 1000, "how many requests one function may hold while it wakes; more get 429")
	f.Float64Var(&o.CPUBrake, "autoscale-cpu-brake", 0.5, "CPU pressure (share of time tasks wait for a CPU, /proc/pressure/cpu) at which busy functions get no more replicas; 0 turns the brake off")
	f.DurationVar(&o.DrainTimeout, "drain-timeout", 30*time.Second, "how long a replica leaving service waits for in-flight requests")
	f.DurationVar(&o.UpstreamTimeout, "upstream-timeout", proxy.DefaultUpstreamTimeout, "how long a function that sets no exec_timeout or write_timeout may take to answer; then 504")
	f.DurationVar(&o.Limits.ReadHeaderTimeout, "read-header-timeout", 10*time.Second, "how long a client may take to send a request's headers; then the connection is closed")
	f.DurationVar(&o.Limits.IdleTimeout, "idle-timeout", 60*time.Second, "how long a keep-alive connection may wait for its next request")
	f.DurationVar(&o.Limits.BodyTimeout, "body-timeout", 30*time.Second, "how long a client may take to send a request body, beyond what --body-min-rate earns it (0: no limit); the function's own time to answer is not counted")
	f.Int64Var(&o.Limits.BodyMinRate, "body-min-rate", 1024, "bytes per second at which a large request body earns time beyond --body-timeout (0: --body-timeout is for the whole body)")
	f.IntVar(&o.Limits.MaxConnections, "max-connections", 2048, "connections open at once on --listen (0: no cap); more are answered 503 and closed")
	f.Int64Var(&o.LogMaxSize, "log-max-size", 10<<20, "bytes at which a replica's log rotates")
	f.IntVar(&o.LogMaxFiles, "log-max-files", 2, "log files kept per replica, the current one included")
	f.StringVar(&o.NATSURL, "nats-url", "", "NATS server with JetStream for async calls, such as nats://10.0.0.5:4222 (default: one embedded in the daemon, stored under the state dir)")
	f.Int64Var(&o.AsyncMaxBody, "async-max-body", queue.DefaultMaxBody, "largest body of an async call, in bytes; larger get 413")
	f.Int64Var(&o.AsyncMaxCalls, "async-max-calls", queue.DefaultMaxCalls, "async calls stored at once; more get 429")
	f.DurationVar(&o.AsyncAckWait, "async-ack-wait", queue.DefaultAckWait, "how long an async call taken by a daemon that died waits before it is run again")
	f.StringVar(&o.Pprof, "pprof", "", "serve Go's profiler on this address, such as 127.0.0.1:6060 (off by default)")
	f.StringVar(&o.LogLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}

// Garbage collector settings of the daemon, unless GOGC or GOMEMLIMIT set
// them. The daemon's live heap is small (a few MiB, plus tens of KiB a
// function) and it allocates little at rest, so collecting at 50% growth
// instead of 100% costs little CPU and keeps its resident memory near what
// it uses. The soft limit makes the collector work harder, and return
// freed memory to the system sooner, as the heap nears it; it is no cap: a
// daemon with more functions than fit simply goes over it.
const (
	daemonGCPercent   = 50
	daemonMemoryLimit = 32 << 20
)

func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(daemonGCPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(daemonMemoryLimit)
	}
}

func runDaemon(ctx context.Context, o daemonOptions) error {
	started := time.Now()
	tuneGC()
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.LogLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	if !(o.CPUBrake >= 0 && o.CPUBrake <= 1) {
		return fmt.Errorf("--autoscale-cpu-brake %v: want a share from 0 (off) to 1", o.CPUBrake)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if o.CNIBinDir == "" {
		o.CNIBinDir = findCNIBinDir()
	}
	if err := os.MkdirAll(o.StateDir, 0o700); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	st, err := store.Open(filepath.Join(o.StateDir, "ember.db"))
	if err != nil {
		return err
	}
	defer st.Close()
	secrets, err := store.OpenSecrets(filepath.Join(o.StateDir, "secrets"))
	if err != nil {
		return err
	}
	password := ""
	if o.Auth {
		if password, err = ensurePassword(filepath.Join(o.StateDir, "basic-auth-password")); err != nil {
			return err
		}
	}
	netw, err := network.New(network.Config{
		Name:     "ember-" + o.Bridge,
		Bridge:   o.Bridge,
		Subnet:   o.Subnet,
		BinDirs:  []string{o.CNIBinDir},
		StateDir: filepath.Join(o.StateDir, "cni"),
		NetNSDir: filepath.Join(o.RunDir, "netns-"+o.Bridge),
	}, log.With("component", "network"))
	if err != nil {
		return err
	}
	// A bridge the plugin cannot use fails every create, forever: refuse
	// to start instead, and say what to do.
	if err := netw.CheckBridge(); err != nil {
		return bridgeAdvice(err)
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own binary for the probe: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	rt, err := runtime.New(ctx, runtime.Config{
		Socket:             o.ContainerdSocket,
		Namespace:          o.Namespace,
		StateDir:           o.StateDir,
		RunDir:             o.RunDir,
		Registerer:         reg,
		InsecureRegistries: o.InsecureRegistries,
		ProbeBinary:        self,
		Nameservers:        o.Nameservers,
		RuncRoot:           o.RuncRoot,
		Secrets:            secrets,
		LogMaxSize:         o.LogMaxSize,
		LogMaxFiles:        o.LogMaxFiles,
	}, netAdapter{netw}, log.With("component", "runtime"))
	if err != nil {
		return err
	}
	defer rt.Close()
	cver, err := rt.Version(ctx)
	if err != nil {
		return err
	}
	ctrl := scale.New(scale.Config{
		HealthInterval: o.HealthInterval,
		CountFlush:     o.CountFlush,
		WakeTimeout:    o.WakeTimeout,
		DrainTimeout:   o.DrainTimeout,
		MaxWaiting:     o.MaxWaiting,
		CPUBrake:       o.CPUBrake,
		CPUSaturated:   cpuBrakeOff(o.CPUBrake),
		Secrets:        secrets,
	}, scale.Deps{Images: rt, Replicas: rt, Tasks: rt, Freezer: rt, Prober: rt, Logs: rt, Usage: rt, Sweeper: rt, Store: st,
		Health: rt, Hosts: rt, Place: rt, Counts: st},
		log.With("component", "scale"), reg)
	if err := ctrl.Recover(ctx); err != nil {
		return err
	}
	ports := proxy.NewPorts(ctrl, log.With("component", "ports"))
	defer ports.Close()
	publishStored(ctrl, ports, log)
	px := proxy.New(ctrl, nil, reg, log.With("component", "proxy"), proxy.WithUpstreamTimeout(o.UpstreamTimeout))
	q, err := queue.Open(ctx, queue.Config{Dir: filepath.Join(o.StateDir, "queue"), URL: o.NATSURL,
		MaxBody: o.AsyncMaxBody, MaxCalls: o.AsyncMaxCalls, AckWait: o.AsyncAckWait},
		ctrl, px, log.With("component", "queue"), reg)
	if err != nil {
		return err
	}
	defer q.Close()
	// Listening before the API is built lets status report the address
	// really served (--listen with port 0 picks one).
	tcpLn, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", o.Listen, err)
	}
	tcpLn = newLimitListener(tcpLn, o.Limits.MaxConnections)
	defer tcpLn.Close()
	a := api.New(api.Config{Version: version, Commit: commit, User: "admin", Password: password,
		Status: api.StatusConfig{Started: started, Containerd: rt.Version, ContainerdSocket: o.ContainerdSocket,
			Namespace: o.Namespace, Bridge: o.Bridge, Subnet: o.Subnet, StateDir: o.StateDir, Listen: tcpLn.Addr().String(), Socket: o.Socket,
			GatewayURL: localURL(tcpLn.Addr()), BridgeGateway: netw.Gateway().String(), Pprof: o.Pprof,
			Cleanup:  func() wire.CleanupStatus { return wire.CleanupStatus(ctrl.Cleanup()) },
			LogDrops: func() wire.LogDrops { return wire.LogDrops(rt.LogDrops()) }}},
		api.Deps{Functions: ctrl, Images: rt, Secrets: secrets, SecretProjector: rt, Logs: rt, Namespaces: st, Proxy: px, Async: q, AsyncQueues: asyncQueues(q), Gatherer: reg,
			Services: serviceHost{rt, ports}, UI: ui.Handler()},
		log.With("component", "api"))

	if o.Pprof != "" {
		// For finding where time goes under load; never on by default.
		go func() {
			if err := http.ListenAndServe(o.Pprof, pprofMux()); err != nil {
				log.Error("pprof", "err", err)
			}
		}()
	}
	unixLn, err := listenUnix(o.Socket)
	if err != nil {
		tcpLn.Close()
		return err
	}
	tcpSrv := newHTTPServer(a.Handler(true), o.Limits, log)
	unixSrv := newHTTPServer(a.Handler(false), unixLimits(o.Limits), log)

	runCtx, cancelRun := context.WithCancel(context.WithoutCancel(ctx))
	ctrlDone := make(chan error, 1)
	go func() { ctrlDone <- ctrl.Run(runCtx) }()
	rtDone := make(chan error, 1)
	go func() { rtDone <- rt.Run(runCtx) }()
	queueDone := make(chan error, 1)
	go func() { queueDone <- q.Run(runCtx) }()
	srvErr := make(chan error, 2)
	go func() { srvErr <- tcpSrv.Serve(tcpLn) }()
	go func() { srvErr <- unixSrv.Serve(unixLn) }()
	composeDone := make(chan struct{})
	go func() {
		defer close(composeDone)
		upDefaultCompose(runCtx, o.StateDir, o.Socket, log.With("component", "compose"))
	}()
	log.Info("serving", "version", version, "listen", tcpLn.Addr().String(), "socket", o.Socket,
		"containerd", cver, "namespace", o.Namespace, "bridge", o.Bridge, "subnet", o.Subnet, "auth", password != "")
	// Type=notify: systemd counts the unit as started only now. Without
	// NOTIFY_SOCKET (not under systemd) this does nothing.
	if _, err := sd.SdNotify(false, sd.SdNotifyReady); err != nil {
		log.Warn("sd_notify", "err", err)
	}

	select {
	case <-ctx.Done():
	case err = <-srvErr:
		log.Error("server failed", "err", err)
	}
	// Stop accepting, let in-flight requests finish, then stop the
	// controller. Function tasks keep running under containerd.
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	tcpSrv.Shutdown(sctx)
	unixSrv.Shutdown(sctx)
	cancelRun()
	<-composeDone
	if err := <-queueDone; err != nil {
		log.Error("async queue", "err", err)
	}
	<-ctrlDone
	<-rtDone
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// localURL is the URL of the gateway at addr from this host: a wildcard
// address is reached on loopback.
func localURL(addr net.Addr) string {
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return "http://" + addr.String()
	}
	ip := ap.Addr().Unmap()
	if ip.IsUnspecified() {
		ip = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	}
	return "http://" + netip.AddrPortFrom(ip, ap.Port()).String()
}

// asyncQueues reports the queue in the API's types.
func asyncQueues(q *queue.Queue) func(context.Context) ([]wire.AsyncQueue, error) {
	return func(ctx context.Context) ([]wire.AsyncQueue, error) {
		st, err := q.Stats(ctx)
		out := make([]wire.AsyncQueue, 0, len(st))
		for _, s := range st {
			out = append(out, wire.AsyncQueue(s))
		}
		return out, err
	}
}

// unixLimits are the limits of the unix socket: the same header and idle
// timeouts, but no body timeout and no connection cap. Only root and
// group ember can connect, and `ember import -` may stream an archive
// from a slow pipe.
func unixLimits(l serverLimits) serverLimits {
	return serverLimits{ReadHeaderTimeout: l.ReadHeaderTimeout, IdleTimeout: l.IdleTimeout}
}

// listenUnix opens the API socket, replacing a stale one. It is mode 0660,
// owned by group "ember" when that group exists, so membership grants use.
func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("socket dir: %w", err)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("socket %s: another ember daemon is serving it", path)
	}
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, err
	}
	if g, err := user.LookupGroup("ember"); err == nil {
		if gid, err := strconv.Atoi(g.Gid); err == nil {
			os.Chown(path, 0, gid)
		}
	}
	return ln, nil
}

// ensurePassword returns the admin password, generating it on first start.
func ensurePassword(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err == nil && len(strings.TrimSpace(string(data))) > 0 {
		return strings.TrimSpace(string(data)), nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read password: %w", err)
	}
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	pw := base64.RawURLEncoding.EncodeToString(b[:])
	if err := os.WriteFile(path, []byte(pw+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write password: %w", err)
	}
	return pw, nil
}

// bridgeAdvice adds what to do, in the daemon's flags, to a bridge
// conflict.
func bridgeAdvice(err error) error {
	var c *network.BridgeConflictError
	if !errors.As(err, &c) {
		return err
	}
	if c.NotBridge || len(c.Has) == 0 {
		return fmt.Errorf("%w: start ember with another --bridge, or delete the device with `ip link delete %s` if no other program uses it", c, c.Bridge)
	}
	return fmt.Errorf("%w: delete it with `ip link delete %s` if no other program uses it, or start ember with --subnet %s", c, c.Bridge, c.Subnets()[0])
}

func findCNIBinDir() string {
	for _, d := range []string{"/opt/cni/bin", "/usr/lib/cni"} {
		if _, err := os.Stat(filepath.Join(d, "bridge")); err == nil {
			return d
		}
	}
	return "/opt/cni/bin"
}

// netAdapter adapts package network's types to the runtime's interface;
// network imports nothing of ember's, by design.
type netAdapter struct{ n *network.Network }

func (a netAdapter) Attach(ctx context.Context, id string) (runtime.Attachment, error) {
	at, err := a.n.Attach(ctx, id)
	return runtime.Attachment{IP: at.IP, NetNS: at.NetNS}, err
}

func (a netAdapter) AttachAt(ctx context.Context, id string, ip netip.Addr) (runtime.Attachment, error) {
	at, err := a.n.AttachAt(ctx, id, ip)
	if errors.Is(err, network.ErrAddrTaken) {
		err = fmt.Errorf("%w: %w", runtime.ErrAddrTaken, err)
	}
	return runtime.Attachment{IP: at.IP, NetNS: at.NetNS}, err
}

func (a netAdapter) Detach(ctx context.Context, id string) error { return a.n.Detach(ctx, id) }

func (a netAdapter) Lookup(id string) (runtime.Attachment, bool) {
	at, ok := a.n.Lookup(id)
	return runtime.Attachment{IP: at.IP, NetNS: at.NetNS}, ok
}

func (a netAdapter) List() ([]string, error) { return a.n.List() }

func (a netAdapter) Gateway() netip.Addr { return a.n.Gateway() }

var (
	_ runtime.Network = netAdapter{}
	_ scale.Images    = (*runtime.Runtime)(nil)
	_ scale.Replicas  = (*runtime.Runtime)(nil)
	_ scale.Tasks     = (*runtime.Runtime)(nil)
	_ scale.Freezer   = (*runtime.Runtime)(nil)
	_ scale.Prober    = (*runtime.Runtime)(nil)
	_ scale.Logs      = (*runtime.Runtime)(nil)
	_ scale.Usage     = (*runtime.Runtime)(nil)
	_ scale.Sweeper   = (*runtime.Runtime)(nil)
	_ scale.Store     = (*store.Store)(nil)
	_ scale.Counts    = (*store.Store)(nil)
	_ proxy.Backends  = (*scale.Controller)(nil)
	_ queue.Specs     = (*scale.Controller)(nil)
	_ queue.Invoker   = (*proxy.Proxy)(nil)
	_ api.Functions   = (*scale.Controller)(nil)
	_ api.Images      = (*runtime.Runtime)(nil)
	_ api.Logs        = (*runtime.Runtime)(nil)
	_ api.Secrets     = (*store.Secrets)(nil)
	_ api.Namespaces  = (*store.Store)(nil)
	_ scale.Secrets   = (*store.Secrets)(nil)
)

func pprofMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// cpuBrakeOff returns a CPUSaturated that never reports saturation when
// the brake is turned off (0), else nil for the controller's default.
func cpuBrakeOff(brake float64) func() bool {
	if brake == 0 {
		return func() bool { return false }
	}
	return nil
}
