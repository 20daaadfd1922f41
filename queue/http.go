package queue

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/emberfaas/ember/function"
)

// Prefix is the path under which async calls are accepted.
const Prefix = "/async-function/"

// ServeHTTP accepts POST /async-function/NAME[/PATH][?QUERY] as OpenFaaS's
// gateway does: 202 with X-Call-Id (the caller's, if sent) once the call
// is stored; 404 for a function that does not exist, 413 for a body over
// the limit, 400 for a bad X-Callback-Url, 429 when the queue is full.
func (q *Queue) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "async calls are POST only", http.StatusMethodNotAllowed)
		return
	}
	rest, _ := strings.CutPrefix(r.URL.EscapedPath(), Prefix)
	ref, path, _ := strings.Cut(rest, "/")
	if ref == "" {
		http.Error(w, "function name missing: use /async-function/NAME", http.StatusNotFound)
		return
	}
	name, err := function.ResolveRef(ref)
	if err == nil {
		_, err = q.specs.Spec(name)
	}
	if err != nil {
		http.Error(w, "function "+ref+" not found", http.StatusNotFound)
		return
	}
	cb := r.Header.Get("X-Callback-Url")
	if cb != "" {
		if u, err := url.Parse(cb); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			http.Error(w, fmt.Sprintf("X-Callback-Url %q: want an http or https URL", cb), http.StatusBadRequest)
			return
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, q.cfg.MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, fmt.Sprintf("body over %d bytes", q.cfg.MaxBody), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	id := r.Header.Get("X-Call-Id")
	if id == "" {
		id = newCallID()
	}
	h := r.Header.Clone()
	for _, k := range []string{"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade", "Content-Length", "X-Callback-Url"} {
		h.Del(k)
	}
	c := call{ID: id, Function: name, Method: r.Method, Path: "/" + path, Query: r.URL.RawQuery,
		Host: r.Host, Header: h, Callback: cb, Enqueued: start}
	if int64(len(body))+int64(headerSize(h))+4096 > q.nc.MaxPayload() {
		http.Error(w, fmt.Sprintf("call over the queue's %d bytes", q.nc.MaxPayload()), http.StatusRequestEntityTooLarge)
		return
	}
	if err := q.enqueue(r.Context(), c, body); err != nil {
		if errors.Is(err, ErrFull) {
			w.Header().Set("Retry-After", "5")
			http.Error(w, "the async queue is full: retry later", http.StatusTooManyRequests)
			return
		}
		q.log.Warn("async call not queued", "fn", name, "err", err)
		http.Error(w, "Error queuing request: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("X-Call-Id", id)
	w.Header().Set("X-Start-Time", strconv.FormatInt(start.UnixNano(), 10))
	w.WriteHeader(http.StatusAccepted)
}

func headerSize(h http.Header) int {
	n := 0
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(v) + 8
		}
	}
	return n
}

// newCallID returns a random UUID (version 4), as the gateway's call IDs.
func newCallID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	s := hex.EncodeToString(b[:])
	return s[0:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:]
}
