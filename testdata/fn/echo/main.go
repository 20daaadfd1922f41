// Command echo is the test function that ember's integration tests deploy. It
// follows the workload contract (serve HTTP, write /tmp/.lock when ready) and
// can be told through its environment to break it in the ways real apps do:
// slow to become ready, ready before listening, never ready, crashing.
//
// Environment, read once at start:
//
//	PORT          port to listen on (default 8080)
//	VERSION       overrides the version linked in with -X main.version
//	LOCK_DELAY    Go duration to wait before writing /tmp/.lock
//	LISTEN_DELAY  Go duration to wait before listening; the two delays run
//	              side by side, so the lock may appear before the port opens
//	NO_LOCK=1     never write /tmp/.lock
//	CRASH=N       print "crashing with N" to stderr and exit N at once
//	READY_STATUS  status GET /_/ready answers (default 200)
//	SINK_URL      where /_/effect records its effects
//	KV_ADDR       the key-value service /_/kv reaches, by name (kv:7000)
//	LOG_SPAM=N    write about N bytes a second of numbered 100-byte lines
//	              to stdout, for as long as it runs
//
// Paths:
//
//	GET /_/health        200 "ok"
//	GET /_/ready         READY_STATUS, for HTTP readiness checks
//	/_/rmlock            remove /tmp/.lock (the replica turns unhealthy)
//	/_/mklock            write /tmp/.lock again
//	/_/exit?code=N       answer, then exit with N
//	/_/sleep?ms=N        sleep N ms (or until the client goes), answer "slept"
//	/_/stream?n=N&ms=M   write N lines, one every M ms, flushing each
//	/_/status?code=N     answer status N with body "status N"
//	/_/redirect          302 to /elsewhere
//	/_/flaky?fail=N&code=C  answer C (default 503) to the first N requests
//	                     with one X-Call-Id, then as the catch-all does:
//	                     a function that is overloaded for a while
//	/_/kv/KEY            GET or PUT KEY in the service at KV_ADDR
//	POST /_/effect       POST the body to SINK_URL, then answer as the
//	                     catch-all does: a side effect a test can count
//	anything else        200 with a JSON description of the request
//
// On SIGTERM it stops accepting, lets in-flight requests finish and exits 0.
// It uses the standard library only so that it builds into a FROM-scratch
// image.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// version is set with -ldflags "-X main.version=V" so that tests can tell
// the images of a rolling update apart.
var version = "dev"

const lockPath = "/tmp/.lock"

// reply is what the catch-all handler answers. itest.EchoResponse mirrors it;
// change both together.
type reply struct {
	Method   string            `json:"method"`
	Path     string            `json:"path"`
	Query    string            `json:"query"`
	Body     string            `json:"body"`
	Headers  map[string]string `json:"headers"`
	Host     string            `json:"host"`
	Version  string            `json:"version"`
	Hostname string            `json:"hostname"`
	PID      int               `json:"pid"`
	UID      int               `json:"uid"`
}

func main() {
	if v := os.Getenv("VERSION"); v != "" {
		version = v
	}
	fmt.Printf("echo starting version=%s\n", version)

	if s := os.Getenv("CRASH"); s != "" {
		code, err := strconv.Atoi(s)
		if err != nil {
			code = 1
		}
		fmt.Fprintf(os.Stderr, "crashing with %d\n", code)
		os.Exit(code)
	}

	lockDelay, err := envDuration("LOCK_DELAY")
	if err != nil {
		fail(err)
	}
	listenDelay, err := envDuration("LISTEN_DELAY")
	if err != nil {
		fail(err)
	}
	readyStatus := http.StatusOK
	if v := os.Getenv("READY_STATUS"); v != "" {
		if readyStatus, err = strconv.Atoi(v); err != nil {
			fail(fmt.Errorf("READY_STATUS: %w", err))
		}
	}
	if v := os.Getenv("LOG_SPAM"); v != "" {
		rate, err := strconv.Atoi(v)
		if err != nil || rate <= 0 {
			fail(fmt.Errorf("LOG_SPAM: %q is not a positive number of bytes a second", v))
		}
		go spam(rate)
	}
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}

	if os.Getenv("NO_LOCK") != "1" {
		// The lock is written on its own clock so that LOCK_DELAY <
		// LISTEN_DELAY gives "ready before listening", as interpreted apps
		// that touch the lock early do.
		go func() {
			time.Sleep(lockDelay)
			if err := writeLock(); err != nil {
				fmt.Fprintf(os.Stderr, "write lock: %v\n", err)
				return
			}
			fmt.Println("echo lock written")
		}()
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	time.Sleep(listenDelay)
	ln, err := net.Listen("tcp", ":"+port)
	if err != nil {
		fail(err)
	}
	fmt.Printf("echo listening on %s\n", ln.Addr())

	exit := make(chan int, 1)
	srv := &http.Server{Handler: newMux(exit, readyStatus), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	select {
	case err := <-served:
		fail(err)
	case code := <-exit:
		// Let the /_/exit response reach the client, but do not wait for
		// other in-flight requests: this is meant to look like a crash.
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = srv.Shutdown(sctx)
		cancel()
		fmt.Printf("echo exiting with %d\n", code)
		os.Exit(code)
	case <-ctx.Done():
		fmt.Println("echo draining")
		// No deadline: the runtime's grace period ends this with SIGKILL.
		if err := srv.Shutdown(context.Background()); err != nil {
			fail(err)
		}
		fmt.Println("echo stopped")
	}
}

func newMux(exit chan<- int, readyStatus int) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_/health", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("GET /_/ready", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(readyStatus)
		fmt.Fprintf(w, "ready status %d", readyStatus)
	})
	mux.HandleFunc("/_/rmlock", func(w http.ResponseWriter, r *http.Request) {
		if err := os.Remove(lockPath); err != nil && !errors.Is(err, os.ErrNotExist) {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "lock removed")
	})
	mux.HandleFunc("/_/mklock", func(w http.ResponseWriter, r *http.Request) {
		if err := writeLock(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "lock written")
	})
	mux.HandleFunc("/_/exit", func(w http.ResponseWriter, r *http.Request) {
		code := intParam(r, "code", 0)
		w.Header().Set("Connection", "close")
		fmt.Fprintf(w, "exiting with %d", code)
		select {
		case exit <- code:
		default: // an exit is already under way
		}
	})
	mux.HandleFunc("/_/sleep", func(w http.ResponseWriter, r *http.Request) {
		t := time.NewTimer(time.Duration(intParam(r, "ms", 0)) * time.Millisecond)
		defer t.Stop()
		select {
		case <-t.C:
			io.WriteString(w, "slept")
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("/_/stream", func(w http.ResponseWriter, r *http.Request) {
		n, ms := intParam(r, "n", 10), intParam(r, "ms", 100)
		rc := http.NewResponseController(w)
		w.Header().Set("Content-Type", "text/plain")
		for i := range n {
			if i > 0 {
				select {
				case <-time.After(time.Duration(ms) * time.Millisecond):
				case <-r.Context().Done():
					return
				}
			}
			fmt.Fprintf(w, "line %d\n", i)
			if err := rc.Flush(); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("/_/status", func(w http.ResponseWriter, r *http.Request) {
		code := intParam(r, "code", http.StatusOK)
		w.WriteHeader(code)
		fmt.Fprintf(w, "status %d", code)
	})
	mux.HandleFunc("/_/alloc", func(w http.ResponseWriter, r *http.Request) {
		// Touch every page so the memory is really used: an OOM test.
		mb := intParam(r, "mb", 1)
		var keep [][]byte
		for range mb {
			b := make([]byte, 1<<20)
			for i := 0; i < len(b); i += 4096 {
				b[i] = 1
			}
			keep = append(keep, b)
		}
		fmt.Fprintf(w, "allocated %d MiB", len(keep))
	})
	mux.HandleFunc("/_/secret", func(w http.ResponseWriter, r *http.Request) {
		// Reads /var/openfaas/secrets/NAME, as OpenFaaS functions do.
		name := r.URL.Query().Get("name")
		data, err := os.ReadFile("/var/openfaas/secrets/" + filepath.Base(name))
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		w.Write(data)
	})
	mux.HandleFunc("/_/write", func(w http.ResponseWriter, r *http.Request) {
		// Tries to write a file: read-only root filesystem tests.
		path := r.URL.Query().Get("path")
		if err := os.WriteFile(path, []byte("x"), 0o644); err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		io.WriteString(w, "wrote "+path)
	})
	mux.HandleFunc("/_/log", func(w http.ResponseWriter, r *http.Request) {
		// Writes a line to stdout: log tests.
		fmt.Println(r.URL.Query().Get("line"))
		io.WriteString(w, "logged")
	})
	mux.HandleFunc("/_/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/elsewhere", http.StatusFound)
	})
	var flakyMu sync.Mutex
	flakySeen := map[string]int{} // X-Call-Id → requests seen
	mux.HandleFunc("/_/flaky", func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Call-Id")
		flakyMu.Lock()
		flakySeen[id]++
		n := flakySeen[id]
		flakyMu.Unlock()
		if n <= intParam(r, "fail", 2) {
			code := intParam(r, "code", http.StatusServiceUnavailable)
			w.WriteHeader(code)
			fmt.Fprintf(w, "status %d, attempt %d", code, n)
			return
		}
		echo(w, r)
	})
	mux.HandleFunc("/_/kv/{key}", func(w http.ResponseWriter, r *http.Request) {
		req, err := http.NewRequestWithContext(r.Context(), r.Method, "http://"+os.Getenv("KV_ADDR")+"/"+r.PathValue("key"), r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	})
	mux.HandleFunc("POST /_/effect", effect)
	mux.HandleFunc("/", echo)
	return mux
}

func echo(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	headers := make(map[string]string, len(r.Header))
	for k, v := range r.Header {
		headers[k] = strings.Join(v, ", ")
	}
	hostname, _ := os.Hostname()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(reply{
		Method:   r.Method,
		Path:     r.URL.Path,
		Query:    r.URL.RawQuery,
		Body:     string(body),
		Headers:  headers,
		Host:     r.Host,
		Version:  version,
		Hostname: hostname,
		PID:      os.Getpid(),
		UID:      os.Getuid(),
	})
}

// effect stands for a request with an effect outside the function (an
// order placed, a row written): it records the body at SINK_URL before it
// answers, so a test can tell a request served twice or lost.
func effect(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	req, err := http.NewRequestWithContext(r.Context(), "POST", os.Getenv("SINK_URL"), bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		http.Error(w, "sink: "+resp.Status, http.StatusBadGateway)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	echo(w, r)
}

func writeLock() error {
	return os.WriteFile(lockPath, []byte(strconv.Itoa(os.Getpid())), 0o644)
}

func intParam(r *http.Request, key string, def int) int {
	n, err := strconv.Atoi(r.URL.Query().Get(key))
	if err != nil {
		return def
	}
	return n
}

func envDuration(key string) (time.Duration, error) {
	s := os.Getenv(key)
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", key, err)
	}
	return d, nil
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "echo: %v\n", err)
	os.Exit(1)
}

// spam writes rate bytes a second to stdout in 100-byte lines, in bursts
// every 10ms. A write that blocks (nobody drains the pipe) stalls it,
// and with it every other writer to stdout, as a real app would stall.
func spam(rate int) {
	const lineLen = 100
	perTick := max(1, rate/100/lineLen)
	for n := 0; ; {
		var b bytes.Buffer
		for range perTick {
			fmt.Fprintf(&b, "spam %012d %s\n", n, strings.Repeat("s", lineLen-len("spam 000000000000 \n")))
			n++
		}
		os.Stdout.Write(b.Bytes())
		time.Sleep(10 * time.Millisecond)
	}
}
