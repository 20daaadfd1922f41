package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/containerd/containerd"
	apievents "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/typeurl/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// Labels ember puts on its containers. They make a container self-describing,
// so a restarted daemon can adopt it without any other record.
const (
	LabelFunction = "io.ember.function"
	LabelHash     = "io.ember.hash"
	LabelIP       = "io.ember.ip"
	LabelImported = "io.ember.imported"
)

const snapshotter = "overlayfs"

// Network attaches replicas to the host's function network. It is
// implemented by package network.
type Network interface {
	Attach(ctx context.Context, id string) (Attachment, error)
	// AttachAt asks for the address ip, and fails with an error that
	// wraps ErrAddrTaken while another id holds it.
	AttachAt(ctx context.Context, id string, ip netip.Addr) (Attachment, error)
	Detach(ctx context.Context, id string) error
	Lookup(id string) (Attachment, bool)
	List() ([]string, error)
	Gateway() netip.Addr
}

// SecretSource reads secret values.
type SecretSource interface {
	Value(name string) ([]byte, error)
}

// Attachment is a replica's place on the network.
type Attachment struct {
	IP    netip.Addr
	NetNS string
}

// Config configures a Runtime. Every field has a default fit for a
// single daemon; tests and side-by-side daemons override them.
type Config struct {
	// Socket is containerd's gRPC socket.
	Socket string
	// Namespace is the containerd namespace holding all of ember's
	// images, containers and tasks.
	Namespace string
	// StateDir holds logs, per-replica files and registry credentials
	// (config.json).
	StateDir string
	// RunDir holds what ends with a reboot: the raw output files the
	// shim writes (RunDir/output), kept off the state dir so that a full
	// state dir never blocks a function's output (see logs.go). Empty
	// puts them in the state dir's log tree, as older embers did.
	RunDir string
	// Registerer, if set, takes the runtime's metrics.
	Registerer prometheus.Registerer
	// InsecureRegistries are registry hosts reached over plain HTTP in
	// addition to localhost and 127.0.0.1.
	InsecureRegistries []string
	// ProbeBinary is a static executable bind-mounted read-only into every
	// container and exec'd to look for the lock file, so images without a
	// shell work too.
	ProbeBinary string
	// Nameservers override the resolv.conf given to functions; empty means
	// the host's, unless those point at a loopback stub resolver.
	Nameservers []string
	// RuncRoot is runc's state directory; empty keeps containerd's default
	// (/run/containerd/runc). Tests give each containerd its own.
	RuncRoot string
	// Secrets gives secret values to mount into the functions that list
	// them.
	Secrets SecretSource
	// LogMaxSize is the size at which a replica's log rotates (default
	// 10 MiB); LogMaxFiles how many files it keeps (default 2), so one
	// replica's logs never take more than about their product on disk.
	LogMaxSize  int64
	LogMaxFiles int
	// PullTimeout bounds one image pull.
	PullTimeout time.Duration
}

// Runtime drives containerd for ember.
type Runtime struct {
	cfg    Config
	client *containerd.Client
	net    Network
	log    *slog.Logger

	logs *collector

	// secretsMu serialises secret projections with each other and with
	// the removal of replica files.
	secretsMu sync.Mutex

	hostsMu      sync.Mutex // guards serviceHosts
	serviceHosts map[string]netip.Addr

	mu   sync.Mutex           // guards below
	ooms map[string]time.Time // container ID → last OOM kill, from containerd's events
	oomC chan struct{}        // closed at the next OOM event; nil while nobody waits
	cpu  map[string]cpuSample // cgroup → last CPU reading, for Usage
	conn connState            // whether containerd answers, see lost
}

// New connects to containerd. The connection is lazy on containerd's side,
// so New only fails for a missing socket or bad config.
func New(ctx context.Context, cfg Config, net Network, log *slog.Logger) (*Runtime, error) {
	if cfg.Namespace == "" {
		return nil, errors.New("runtime: namespace is required")
	}
	if cfg.LogMaxSize == 0 {
		cfg.LogMaxSize = 10 << 20
	}
	if cfg.LogMaxFiles == 0 {
		cfg.LogMaxFiles = 2
	}
	if cfg.PullTimeout == 0 {
		cfg.PullTimeout = 5 * time.Minute
	}
	out := logDir(cfg.StateDir)
	if cfg.RunDir != "" {
		out = filepath.Join(cfg.RunDir, "output")
	}
	for _, d := range []string{out, logDir(cfg.StateDir), filesDir(cfg.StateDir)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("runtime: %w", err)
		}
	}
	client, err := containerd.New(cfg.Socket,
		containerd.WithDefaultNamespace(cfg.Namespace),
		containerd.WithTimeout(10*time.Second))
	if err != nil {
		return nil, fmt.Errorf("connect to containerd at %s: %w", cfg.Socket, err)
	}
	if cfg.ProbeBinary != "" {
		if ok, err := staticELF(cfg.ProbeBinary); err != nil || !ok {
			// Say it once, here, rather than as a failed health check
			// per replica.
			log.Warn("the probe binary is not a static executable and cannot run in containers without a C library: "+
				"locks are checked through /proc only; build ember with CGO_ENABLED=0 (make build does)",
				"probe", cfg.ProbeBinary, "err", err)
			cfg.ProbeBinary = ""
		}
	}
	r := &Runtime{cfg: cfg, client: client, net: net, log: log, ooms: map[string]time.Time{}, cpu: map[string]cpuSample{},
		logs: newCollector([]string{out, logDir(cfg.StateDir)}, logDir(cfg.StateDir), cfg.LogMaxSize, cfg.LogMaxFiles, log,
			newLogMetrics(cfg.Registerer))}
	if err := r.writeResolvConf(); err != nil {
		client.Close()
		return nil, err
	}
	return r, nil
}

// Close closes the containerd connection; tasks keep running.
func (r *Runtime) Close() error { return r.client.Close() }

// Version is the containerd daemon's version.
func (r *Runtime) Version(ctx context.Context) (string, error) {
	v, err := r.client.Version(r.ns(ctx))
	if err != nil {
		return "", fmt.Errorf("containerd version: %w", err)
	}
	return v.Version, nil
}

func (r *Runtime) ns(ctx context.Context) context.Context {
	return namespaces.WithNamespace(ctx, r.cfg.Namespace)
}

func logDir(state string) string   { return filepath.Join(state, "logs") }
func filesDir(state string) string { return filepath.Join(state, "replicas") }

// LogPath is where the shim writes a replica's stdout and stderr.
func (r *Runtime) LogPath(fn, id string) string { return r.rawPath(fn, id) }

// Run collects logs and follows containerd's OOM events, so an exit can be
// reported as an OOM kill. It returns when ctx ends.
func (r *Runtime) Run(ctx context.Context) error {
	logsDone := make(chan error, 1)
	go func() { logsDone <- r.logs.run(ctx) }()
	err := r.followOOM(ctx)
	if lerr := <-logsDone; lerr != nil {
		r.log.Error("log collector", "err", lerr)
	}
	return err
}

func (r *Runtime) followOOM(ctx context.Context) error {
	ctx = r.ns(ctx)
	for {
		evC, errC := r.client.Subscribe(ctx, `topic=="/tasks/oom"`, fmt.Sprintf("namespace==%q", r.cfg.Namespace))
	recv:
		for {
			select {
			case ev := <-evC:
				v, err := typeurl.UnmarshalAny(ev.Event)
				if err != nil {
					continue
				}
				if oom, ok := v.(*apievents.TaskOOM); ok {
					r.recordOOM(oom.ContainerID)
				}
			case err := <-errC:
				if ctx.Err() != nil {
					return nil
				}
				if unreachable(err) {
					r.lost(err) // said once, not at every retry
				} else {
					r.log.Warn("containerd events", "err", err)
				}
				break recv
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

// recordOOM notes an OOM kill of container id and wakes the exits waiting
// for one.
func (r *Runtime) recordOOM(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ooms[id] = time.Now()
	if r.oomC != nil {
		close(r.oomC)
		r.oomC = nil
	}
}

// oomKilled reports whether the container was OOM-killed in the last
// minute, and forgets it.
func (r *Runtime) oomKilled(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.takeOOMLocked(id)
}

func (r *Runtime) takeOOMLocked(id string) bool {
	t, ok := r.ooms[id]
	delete(r.ooms, id)
	return ok && time.Since(t) < time.Minute
}

// awaitOOM waits at most d for an OOM event of container id, and reports
// whether one came. It returns false at once when ctx ends.
func (r *Runtime) awaitOOM(ctx context.Context, id string, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		r.mu.Lock()
		if _, ok := r.ooms[id]; ok {
			oom := r.takeOOMLocked(id)
			r.mu.Unlock()
			return oom
		}
		if r.oomC == nil {
			r.oomC = make(chan struct{})
		}
		ev := r.oomC
		r.mu.Unlock()
		select {
		case <-ev: // some container's: look again
		case <-t.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}
