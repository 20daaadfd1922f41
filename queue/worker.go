package queue

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// maxResponse bounds the part of a function's answer kept for its
// callback.
const maxResponse = 16 << 20

// work runs one function's calls until ctx is done, reconnecting its
// consumer after errors.
func (q *Queue) work(ctx context.Context, name string) {
	for {
		err := q.consume(ctx, name)
		if ctx.Err() != nil {
			return
		}
		q.log.Warn("async worker", "fn", name, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// consume takes name's calls from its durable consumer, at most
// max_inflight at once: the server hands out no more unacknowledged calls
// than that, and the worker runs no more goroutines.
func (q *Queue) consume(ctx context.Context, name string) error {
	pol := q.policy(name)
	cons, err := q.js.CreateOrUpdateConsumer(ctx, streamName, jetstream.ConsumerConfig{
		Durable:       consumerName(name),
		FilterSubject: subject(name),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       q.cfg.AckWait,
		MaxAckPending: pol.MaxInflight,
		MaxDeliver:    -1, // the worker decides when a call has had enough attempts
	})
	if err != nil {
		return fmt.Errorf("consumer: %w", err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(pol.MaxInflight))
	if err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	sem := make(chan struct{}, pol.MaxInflight)
	for {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			it.Stop()
			return nil
		}
		msg, err := it.Next()
		if err != nil {
			it.Stop()
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			q.handle(ctx, name, msg)
		}()
	}
}

func (q *Queue) policy(name string) Policy {
	// A function removed since has the defaults: its calls end with the
	// proxy's 404, which is not retried.
	spec, _ := q.specs.Spec(name)
	return PolicyOf(spec)
}

// result is how one attempt ended.
type result struct {
	code     int
	header   http.Header
	body     []byte
	duration time.Duration
}

// handle runs one delivery of a call: the call, then either a retry
// later, or the callback and the acknowledgement. Acknowledging last
// makes delivery at least once: a daemon killed before the ack runs the
// call again when it restarts.
func (q *Queue) handle(ctx context.Context, name string, msg jetstream.Msg) {
	var c call
	if err := json.Unmarshal([]byte(msg.Headers().Get(callHeader)), &c); err != nil {
		q.log.Error("async call unreadable: dropped", "fn", name, "err", err)
		msg.Term()
		return
	}
	attempt := 1
	if meta, err := msg.Metadata(); err == nil {
		attempt = int(meta.NumDelivered)
	}
	gauge := q.m.inflight.WithLabelValues(name)
	gauge.Inc()
	q.addRunning(name, 1)
	res := q.invoke(ctx, c, msg)
	q.addRunning(name, -1)
	gauge.Dec()
	if ctx.Err() != nil {
		// Shutting down: the next start runs it again.
		msg.Nak()
		return
	}
	pol := q.policy(name)
	if wait, ok := pol.Retry(attempt, res.code); ok {
		q.m.retries.WithLabelValues(name).Inc()
		q.log.Debug("async call retried", "fn", name, "call_id", c.ID, "status", res.code, "attempt", attempt, "wait", wait)
		if err := msg.NakWithDelay(wait); err != nil {
			q.log.Warn("async call: schedule retry", "fn", name, "call_id", c.ID, "err", err)
		}
		return
	}
	if res.code >= 400 && attempt >= pol.Attempts && pol.retryable(res.code) {
		q.m.failed.WithLabelValues(name).Inc()
		q.log.Warn("async call gave up", "fn", name, "call_id", c.ID, "status", res.code, "attempts", attempt)
	}
	q.callback(ctx, c, res)
	if err := msg.DoubleAck(ctx); err != nil {
		// It will be run again: at least once.
		q.log.Warn("async call: ack", "fn", name, "call_id", c.ID, "err", err)
	}
	q.m.completed.WithLabelValues(name, strconv.Itoa(res.code)).Inc()
	q.m.seconds.WithLabelValues(name).Observe(time.Since(c.Enqueued).Seconds())
}

// invoke serves the call to the Invoker as a request to
// /function/NAME/PATH?QUERY, keeping the stored call in progress while it
// runs so that the server does not hand it to another worker.
func (q *Queue) invoke(ctx context.Context, c call, msg jetstream.Msg) (res result) {
	u, err := url.Parse("/function/" + c.Function + c.Path)
	if err != nil {
		return result{code: http.StatusBadRequest, header: http.Header{}, body: []byte(err.Error())}
	}
	u.RawQuery = c.Query
	req, err := http.NewRequestWithContext(ctx, c.Method, u.String(), bytes.NewReader(msg.Data()))
	if err != nil {
		return result{code: http.StatusBadRequest, header: http.Header{}, body: []byte(err.Error())}
	}
	req.Header = c.Header.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	req.Header.Set("X-Call-Id", c.ID)
	req.Host = c.Host
	req.RemoteAddr = "127.0.0.1:0"
	req.RequestURI = u.RequestURI()

	beat := time.NewTicker(max(q.cfg.AckWait/3, 10*time.Millisecond))
	done := make(chan struct{})
	go func() {
		defer beat.Stop()
		for {
			select {
			case <-done:
				return
			case <-beat.C:
				msg.InProgress()
			}
		}
	}()
	defer close(done)

	rec := &recorder{header: http.Header{}, code: http.StatusOK}
	start := time.Now()
	defer func() {
		res = result{code: rec.code, header: rec.header, body: rec.body.Bytes(), duration: time.Since(start)}
		if p := recover(); p != nil {
			// The proxy aborts a response it could not copy.
			if p != http.ErrAbortHandler {
				q.log.Error("async call panicked", "fn", c.Function, "call_id", c.ID, "panic", p)
			}
			res.code = http.StatusBadGateway
		}
	}()
	q.inv.ServeHTTP(rec, req)
	return
}

// recorder keeps a response for the callback.
type recorder struct {
	header http.Header
	code   int
	wrote  bool
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if !r.wrote && code >= 200 {
		r.code, r.wrote = code, true
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wrote = true
	if room := maxResponse - r.body.Len(); room > 0 {
		r.body.Write(b[:min(len(b), room)])
	}
	return len(b), nil
}

// Flush lets the proxy flush streamed answers; they are kept whole.
func (r *recorder) Flush() {}

// callbackAttempts is how often a callback is tried.
const callbackAttempts = 5

// callback POSTs the function's answer to the call's X-Callback-Url with
// the function's headers and OpenFaaS's X-Call-Id, X-Function-Status,
// X-Function-Name and X-Duration-Seconds, retrying on errors and 5xx.
func (q *Queue) callback(ctx context.Context, c call, res result) {
	if c.Callback == "" {
		return
	}
	wait := 200 * time.Millisecond
	var last string
	for try := 1; try <= callbackAttempts; try++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.Callback, bytes.NewReader(res.body))
		if err != nil {
			last = err.Error()
			break
		}
		for k, vs := range res.header {
			if k == "Content-Length" || k == "Transfer-Encoding" || k == "Connection" {
				continue
			}
			req.Header[k] = vs
		}
		req.Header.Set("X-Call-Id", c.ID)
		req.Header.Set("X-Function-Status", strconv.Itoa(res.code))
		req.Header.Set("X-Function-Name", c.Function)
		req.Header.Set("X-Duration-Seconds", strconv.FormatFloat(res.duration.Seconds(), 'f', 6, 64))
		req.Header.Set("User-Agent", "ember-queue")
		resp, err := q.cfg.Client.Do(req)
		if err == nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			if resp.StatusCode < 500 {
				return
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		if try == callbackAttempts {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait *= 2
	}
	q.m.callbacks.WithLabelValues(c.Function).Inc()
	q.log.Warn("async callback failed", "fn", c.Function, "call_id", c.ID, "url", c.Callback, "err", last)
}
