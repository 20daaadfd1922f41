// Command hello is ember's example function, the one install.sh deploys.
// It is a template for your own: any HTTP server in any language works the
// same way, as long as it keeps ember's workload contract:
//
//   - serve HTTP on port 8080: /function/hello/a/b?x=1 arrives as /a/b?x=1;
//   - write /tmp/.lock once it accepts requests (ember sends traffic only to
//     replicas with the lock and an open port, and replaces a replica whose
//     lock disappears);
//   - keep no state: any replica may be replaced, paused or stopped.
//
// It answers every request with a greeting, the path it was asked for and
// the replica that served it, and stops gracefully on SIGTERM. `make
// examples` builds it into examples/hello.tar (FROM scratch, user nobody)
// for `ember import`, without Docker or a registry.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

const lockPath = "/tmp/.lock"

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	greeting := os.Getenv("GREETING")
	if greeting == "" {
		greeting = "Hello from ember!"
	}
	host, _ := os.Hostname()

	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "%s\nYou asked for %s %s (replica %s).\n", greeting, r.Method, r.URL.RequestURI(), host)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	// Listen first, then write the lock: the lock promises that requests
	// will be accepted.
	ln, err := net.Listen("tcp", ":"+port)
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(lockPath, nil, 0o644); err != nil {
		log.Fatal(err)
	}
	log.Printf("hello: listening on :%s", port)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		<-ctx.Done()
		// Leave rotation first, then let in-flight requests finish.
		os.Remove(lockPath)
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
	<-stopped // Serve returns at once; Shutdown returns when requests are done
	log.Print("hello: stopped")
}
