package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/emberfaas/ember/api/wire"
	"github.com/emberfaas/ember/client"
)

func logLine(text string) wire.LogMessage {
	return wire.LogMessage{Name: "echo", Namespace: "openfaas-fn", Instance: "r1",
		Timestamp: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Text: text}
}

// Lines reach the caller as the daemon flushes them, not when the stream
// ends: the daemon here sends its second line only once the client has
// handed on the first.
func TestLogsStream(t *testing.T) {
	query := make(chan string, 1)
	first := make(chan struct{})
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		query <- r.URL.RawQuery
		w.Header().Set("Content-Type", "application/x-ndjson")
		enc := json.NewEncoder(w)
		enc.Encode(logLine("one"))
		w.(http.Flusher).Flush()
		select {
		case <-first:
		case <-r.Context().Done():
			return
		case <-time.After(10 * time.Second):
			// A client that buffers the stream would wait here forever.
			t.Error("the first line never reached the caller before the stream ended")
		}
		enc.Encode(logLine("two"))
	})
	var got []wire.LogMessage
	since := time.Date(2026, 1, 2, 4, 4, 5, 0, time.FixedZone("CET", 3600))
	err := client.New(srv.URL).Logs(t.Context(), "echo",
		client.LogOptions{Follow: true, Since: since, Tail: 5, Instance: "r1"},
		func(m wire.LogMessage) error {
			if got = append(got, m); len(got) == 1 {
				close(first)
			}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]wire.LogMessage{logLine("one"), logLine("two")}, got); diff != "" {
		t.Errorf("lines (-want +got):\n%s", diff)
	}
	// since goes out in UTC, as the daemon parses it.
	if q, want := <-query, "follow=true&instance=r1&name=echo&since=2026-01-02T03%3A04%3A05Z&tail=5"; q != want {
		t.Errorf("query %q, want %q", q, want)
	}
}

func TestLogsDefaults(t *testing.T) {
	srv, seen := fake(t, http.StatusOK, "")
	if err := client.New(srv.URL).Logs(t.Context(), "echo", client.LogOptions{}, func(wire.LogMessage) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if r := <-seen; r.uri != "/system/logs?follow=false&name=echo" {
		t.Errorf("daemon saw %s, want /system/logs?follow=false&name=echo", r.uri)
	}
}

// Following ends when the caller's context does, and that is no error.
func TestLogsFollowCancel(t *testing.T) {
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(logLine("one"))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	n := 0
	err := client.New(srv.URL).Logs(ctx, "echo", client.LogOptions{Follow: true}, func(wire.LogMessage) error {
		n++
		cancel()
		return nil
	})
	if err != nil || n != 1 {
		t.Errorf("Logs after cancel: %d lines, %v; want 1 line and no error", n, err)
	}
}

func TestLogsErrors(t *testing.T) {
	stop := errors.New("stop")
	for _, tc := range []struct {
		name  string
		code  int
		reply string
		out   func(wire.LogMessage) error
		check func(error) bool
	}{
		{"unknown function", http.StatusNotFound, "function echo not found\n", nil, func(err error) bool {
			var se *client.StatusError
			return errors.As(err, &se) && se.Code == http.StatusNotFound && err.Error() == "function echo not found"
		}},
		{"caller stops", http.StatusOK, `{"text":"one"}` + "\n" + `{"text":"two"}` + "\n",
			func(wire.LogMessage) error { return stop },
			func(err error) bool { return errors.Is(err, stop) }},
		{"malformed line", http.StatusOK, `{"text":"one"}` + "\n{bad\n", nil,
			func(err error) bool { return err != nil && strings.HasPrefix(err.Error(), "logs: ") }},
	} {
		srv, _ := fake(t, tc.code, tc.reply)
		out := tc.out
		if out == nil {
			out = func(wire.LogMessage) error { return nil }
		}
		if err := client.New(srv.URL).Logs(t.Context(), "echo", client.LogOptions{}, out); !tc.check(err) {
			t.Errorf("%s: unexpected error %v", tc.name, err)
		}
	}
}
