// Command kv is the stateful service of ember's integration tests: a
// key-value store over HTTP that keeps each key in a file under $DATA
// (default /data), so what it holds survives only if its volume does.
//
//	kv            serve on $PORT (default 7000): GET /KEY, PUT /KEY, GET /_/health
//	              (failing while the key _sick holds "yes")
//	kv check      the healthcheck: exit 0 when the server answers
package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "7000"
	}
	if len(os.Args) > 1 && os.Args[1] == "check" {
		c := http.Client{Timeout: time.Second}
		resp, err := c.Get("http://127.0.0.1:" + port + "/_/health")
		if err != nil || resp.StatusCode != http.StatusOK {
			os.Exit(1)
		}
		os.Exit(0)
	}
	dir := os.Getenv("DATA")
	if dir == "" {
		dir = "/data"
	}
	http.HandleFunc("GET /_/health", func(w http.ResponseWriter, r *http.Request) {
		// The key _sick set to "yes" fails the healthcheck, for tests of
		// a service that runs but is unwell.
		if b, _ := os.ReadFile(filepath.Join(dir, "_sick")); string(b) == "yes" {
			http.Error(w, "sick", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok")
	})
	http.HandleFunc("/{key}", func(w http.ResponseWriter, r *http.Request) {
		key := r.PathValue("key")
		if strings.ContainsAny(key, "/\\") || strings.HasPrefix(key, ".") {
			http.Error(w, "bad key", http.StatusBadRequest)
			return
		}
		path := filepath.Join(dir, key)
		switch r.Method {
		case http.MethodGet:
			b, err := os.ReadFile(path)
			if errors.Is(err, fs.ErrNotExist) {
				http.Error(w, "no such key", http.StatusNotFound)
				return
			} else if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			w.Write(b)
		case http.MethodPut:
			b, _ := io.ReadAll(r.Body)
			if err := write(path, b); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			io.WriteString(w, "stored")
		default:
			http.Error(w, "GET or PUT", http.StatusMethodNotAllowed)
		}
	})
	fmt.Println("kv serving on :" + port + " from " + dir)
	if err := http.ListenAndServe(":"+port, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// write stores a value durably: a SIGKILL right after the answer loses
// nothing.
func write(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
