package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/emberfaas/ember/function"
)

// Specs looks up deployed functions; implemented by the controller.
type Specs interface {
	Spec(name string) (function.Spec, error)
}

// Invoker serves a synchronous call to /function/NAME/...; the proxy is
// one, so an async call is served exactly as a sync one is.
type Invoker interface {
	ServeHTTP(w http.ResponseWriter, r *http.Request)
}

// ErrFull is returned (wrapped) when the stream holds as many calls as it
// may.
var ErrFull = errors.New("queue full")

const (
	streamName    = "EMBER_CALLS"
	subjectPrefix = "ember.calls."
	callHeader    = "Ember-Call"
)

// Defaults for Config's zero values.
const (
	DefaultMaxBody  = 1 << 20
	DefaultMaxCalls = 100_000
	DefaultAckWait  = 30 * time.Second
)

// Config configures a Queue.
type Config struct {
	// Dir holds the embedded server's file store. Unused with URL.
	Dir string
	// URL, when set, is an external NATS server with JetStream, used
	// instead of the embedded one.
	URL string
	// MaxBody limits an async call's body (default DefaultMaxBody).
	MaxBody int64
	// MaxCalls bounds the calls stored at once; beyond it callers get 429
	// (default DefaultMaxCalls).
	MaxCalls int64
	// AckWait is how long a call taken by a worker that died (the daemon
	// killed) stays invisible before it is run again (default
	// DefaultAckWait). A live worker extends it while the call runs.
	AckWait time.Duration
	// Client sends callbacks (default: a client with a 30s timeout).
	Client *http.Client
}

// Queue stores async calls and runs them.
type Queue struct {
	cfg   Config
	specs Specs
	inv   Invoker
	log   *slog.Logger
	m     *metrics
	srv   *server.Server // nil with an external server
	nc    *nats.Conn
	js    jetstream.JetStream

	mu       sync.Mutex // guards below
	runCtx   context.Context
	workers  map[string]bool
	inflight map[string]int64 // calls being run, by function
	wg       sync.WaitGroup
}

// running is how many of name's calls are being run now.
func (q *Queue) running(name string) int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.inflight[name]
}

func (q *Queue) addRunning(name string, d int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.inflight[name] += d
}

// Open starts the embedded server (or connects to cfg.URL) and makes sure
// the stream exists. Its metrics are registered on reg (nil: not
// registered).
func Open(ctx context.Context, cfg Config, specs Specs, inv Invoker, log *slog.Logger, reg prometheus.Registerer) (*Queue, error) {
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.MaxCalls <= 0 {
		cfg.MaxCalls = DefaultMaxCalls
	}
	if cfg.AckWait <= 0 {
		cfg.AckWait = DefaultAckWait
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 30 * time.Second}
	}
	q := &Queue{cfg: cfg, specs: specs, inv: inv, log: log, m: newMetrics(reg), workers: map[string]bool{}, inflight: map[string]int64{}}
	var err error
	if cfg.URL != "" {
		q.nc, err = nats.Connect(cfg.URL, nats.Name("ember"), nats.MaxReconnects(-1))
		if err != nil {
			return nil, fmt.Errorf("connect to nats %s: %w", cfg.URL, err)
		}
	} else if err := q.startEmbedded(); err != nil {
		return nil, err
	}
	if q.js, err = jetstream.New(q.nc); err != nil {
		q.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	_, err = q.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:     streamName,
		Subjects: []string{subjectPrefix + "*"},
		// A call leaves the stream when its worker acknowledges it.
		Retention: jetstream.WorkQueuePolicy,
		Storage:   jetstream.FileStorage,
		MaxMsgs:   cfg.MaxCalls,
		Discard:   jetstream.DiscardNew,
		// A call resent with the same X-Call-Id is stored once.
		Duplicates: 2 * time.Minute,
	})
	if err != nil {
		q.Close()
		return nil, fmt.Errorf("create stream %s: %w", streamName, err)
	}
	return q, nil
}

// startEmbedded runs nats-server in this process with no listener: the
// daemon's connection is in-process, so the queue opens no port.
func (q *Queue) startEmbedded() error {
	srv, err := server.NewServer(&server.Options{
		ServerName: "ember",
		DontListen: true,
		JetStream:  true,
		StoreDir:   q.cfg.Dir,
		// A call is its body plus its headers.
		MaxPayload: int32(q.cfg.MaxBody + 256<<10),
		NoSigs:     true,
		NoLog:      true,
	})
	if err != nil {
		return fmt.Errorf("nats server: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		return errors.New("nats server: not ready after 30s")
	}
	q.srv = srv
	q.nc, err = nats.Connect("", nats.InProcessServer(srv), nats.Name("ember"))
	if err != nil {
		srv.Shutdown()
		return fmt.Errorf("connect to embedded nats: %w", err)
	}
	return nil
}

// Close closes the connection and stops the embedded server. Call it
// after Run returned.
func (q *Queue) Close() {
	if q.nc != nil {
		q.nc.Close()
	}
	if q.srv != nil {
		q.srv.Shutdown()
		q.srv.WaitForShutdown()
	}
}

// Run starts a worker for every function with stored calls or a consumer
// from an earlier run, and more as calls arrive; it returns when ctx is
// done and every worker has stopped. A call being run then is not
// acknowledged: it is run again on the next start.
func (q *Queue) Run(ctx context.Context) error {
	names := map[string]bool{}
	stream, err := q.js.Stream(ctx, streamName)
	if err != nil {
		return fmt.Errorf("stream %s: %w", streamName, err)
	}
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(subjectPrefix+"*"))
	if err != nil {
		return fmt.Errorf("stream %s: %w", streamName, err)
	}
	for subj := range info.State.Subjects {
		names[keyOf(strings.TrimPrefix(subj, subjectPrefix))] = true
	}
	lister := stream.ConsumerNames(ctx)
	for n := range lister.Name() {
		if fn, ok := strings.CutPrefix(n, "fn-"); ok {
			names[keyOf(fn)] = true
		}
	}
	if err := lister.Err(); err != nil {
		return fmt.Errorf("list consumers: %w", err)
	}
	q.mu.Lock()
	q.runCtx = ctx
	q.mu.Unlock()
	for n := range names {
		q.ensureWorker(n)
	}
	<-ctx.Done()
	q.wg.Wait()
	return nil
}

// ensureWorker starts name's worker unless it runs, or Run has not
// started (it starts workers for what was stored before).
func (q *Queue) ensureWorker(name string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.runCtx == nil || q.runCtx.Err() != nil || q.workers[name] {
		return
	}
	q.workers[name] = true
	q.wg.Add(1)
	go func() {
		defer q.wg.Done()
		q.work(q.runCtx, name)
	}()
}

// call is what is stored of an async call beside its body.
type call struct {
	ID       string      `json:"id"`
	Function string      `json:"function"`
	Method   string      `json:"method"`
	Path     string      `json:"path"` // below /function/NAME, escaped
	Query    string      `json:"query,omitempty"`
	Host     string      `json:"host,omitempty"`
	Header   http.Header `json:"header,omitempty"`
	Callback string      `json:"callback,omitempty"`
	Enqueued time.Time   `json:"enqueued"`
}

func subject(name string) string { return subjectPrefix + token(name) }

// consumerName is the durable consumer of a function's calls.
func consumerName(name string) string { return "fn-" + token(name) }

// token is a function's key as one NATS subject token and consumer name,
// which cannot hold a dot: NAME.NS becomes NAME_NS ('_' is in no function
// or namespace name, so keyOf maps it back). Keys in the default
// namespace have no dot and are their own tokens, as before namespaces.
func token(key string) string { return strings.ReplaceAll(key, ".", "_") }

func keyOf(token string) string { return strings.ReplaceAll(token, "_", ".") }

// enqueue stores a call; the handler checked its size.
func (q *Queue) enqueue(ctx context.Context, c call, body []byte) error {
	meta, err := json.Marshal(c)
	if err != nil {
		return err
	}
	msg := nats.NewMsg(subject(c.Function))
	msg.Header.Set(callHeader, string(meta))
	msg.Data = body
	if _, err := q.js.PublishMsg(ctx, msg, jetstream.WithMsgID(c.ID)); err != nil {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && strings.Contains(apiErr.Description, "maximum") {
			return fmt.Errorf("%w: %s", ErrFull, apiErr.Description)
		}
		return fmt.Errorf("store call: %w", err)
	}
	q.m.enqueued.WithLabelValues(c.Function).Inc()
	q.ensureWorker(c.Function)
	return nil
}

// Stats is one function's async calls: Queued not yet taken by its
// worker, InFlight running now, Retrying taken and waiting for another
// try.
type Stats struct {
	Function string
	Queued   uint64
	InFlight int
	Retrying int
}

// Stats reports every function that has a worker, by name.
func (q *Queue) Stats(ctx context.Context) ([]Stats, error) {
	q.mu.Lock()
	names := make([]string, 0, len(q.workers))
	for n := range q.workers {
		names = append(names, n)
	}
	q.mu.Unlock()
	slices.Sort(names)
	out := make([]Stats, 0, len(names))
	for _, n := range names {
		cons, err := q.js.Consumer(ctx, streamName, consumerName(n))
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			continue // its worker is (re)creating it
		}
		if err != nil {
			return nil, fmt.Errorf("consumer of %s: %w", n, err)
		}
		info, err := cons.Info(ctx)
		if err != nil {
			return nil, fmt.Errorf("consumer of %s: %w", n, err)
		}
		inflight := int(q.running(n))
		out = append(out, Stats{Function: n, Queued: info.NumPending, InFlight: inflight,
			Retrying: max(0, info.NumAckPending-inflight)})
	}
	return out, nil
}
