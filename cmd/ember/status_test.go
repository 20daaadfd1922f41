package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/emberfaas/ember/api/wire"
	"github.com/emberfaas/ember/client"
)

func sampleStatus() wire.SystemStatus {
	return wire.SystemStatus{
		Version: "v1.2.0", Commit: "abc1234",
		Started:       time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		UptimeSeconds: 3723,
		Containerd:    wire.ContainerdStatus{Socket: "/run/containerd/containerd.sock", Namespace: "ember", Version: "1.6.20"},
		Bridge:        "ember0", Subnet: "10.63.0.0/16", StateDir: "/var/lib/ember",
		Listen: "0.0.0.0:8080", Socket: "/run/ember/ember.sock",
		GatewayURL: "http://127.0.0.1:8080", BridgeGateway: "10.63.0.1",
		Functions: wire.Counts{Total: 3, ByState: map[string]int{"zero": 1, "active": 2}},
		Replicas:  wire.Counts{Total: 4, ByState: map[string]int{"starting": 1, "zero": 1, "ready": 2}},
	}
}

func TestStatusTable(t *testing.T) {
	st := sampleStatus()
	var buf bytes.Buffer
	fetch := func(context.Context) (wire.SystemStatus, error) { return st, nil }
	if err := runStatus(t.Context(), fetch, "", &buf); err != nil {
		t.Fatal(err)
	}
	got := buf.String()
	for _, want := range []string{
		"Daemon:      v1.2.0 (abc1234), up 1h2m3s since ",
		"Containerd:  1.6.20 (/run/containerd/containerd.sock, namespace ember)\n",
		"Network:     bridge ember0, subnet 10.63.0.0/16, host 10.63.0.1 (functions and services reach the host there)\n",
		"Listening:   0.0.0.0:8080 (gateway and API), socket /run/ember/ember.sock (API)\n",
		"Gateway:     http://127.0.0.1:8080/function/NAME\n",
		"State dir:   /var/lib/ember\n",
		"Functions:   3 (2 active, 1 zero)\n",
		"Replicas:    4 (2 ready, 1 starting, 1 zero)\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}

	if strings.Contains(got, "Cleanup:") {
		t.Errorf("output shows a cleanup line with nothing pending:\n%s", got)
	}
	st.Cleanup = &wire.CleanupStatus{Pending: 2, Failures: 5, LastError: "cni del: plugin failed"}
	buf.Reset()
	if err := runStatus(t.Context(), fetch, "", &buf); err != nil {
		t.Fatal(err)
	}
	if want := "Cleanup:     2 pending (5 failures since start): cni del: plugin failed\n"; !strings.Contains(buf.String(), want) {
		t.Errorf("output lacks %q:\n%s", want, buf.String())
	}
	st.Cleanup = nil

	st.Containerd.Version, st.Containerd.Error = "", "connection refused"
	st.Functions, st.Replicas = wire.Counts{}, wire.Counts{}
	buf.Reset()
	if err := runStatus(t.Context(), fetch, "", &buf); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Containerd:  not answering: connection refused (", "Functions:   0\n", "Replicas:    0\n"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, buf.String())
		}
	}
}

func TestFormatCountsOrder(t *testing.T) {
	got := formatCounts(wire.Counts{Total: 9, ByState: map[string]int{
		"exited": 1, "weird": 1, "ready": 1, "stopping": 1, "paused": 1, "unhealthy": 1, "starting": 1, "zero": 1, "another": 1,
	}})
	want := "9 (1 ready, 1 starting, 1 unhealthy, 1 paused, 1 zero, 1 stopping, 1 exited, 1 another, 1 weird)"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// TestStatusOverSocket checks the CLI's request and JSON output against a
// server on a unix socket, as the daemon serves it.
func TestStatusOverSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	want := sampleStatus()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/system/status" {
			http.Error(w, "no such route", http.StatusNotFound)
			return
		}
		json.NewEncoder(w).Encode(want)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	var buf bytes.Buffer
	fetch := client.New(sock).Status
	if err := runStatus(t.Context(), fetch, "json", &buf); err != nil {
		t.Fatal(err)
	}
	var got wire.SystemStatus
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, buf.String())
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}

	if err := runStatus(t.Context(), fetch, "yaml", &buf); err == nil {
		t.Error("-o yaml: no error")
	}
	_, err = client.New(filepath.Join(t.TempDir(), "none.sock")).Status(t.Context())
	if err == nil || !strings.Contains(err.Error(), "ember daemon:") {
		t.Errorf("no daemon: err %v, want one naming the daemon", err)
	}
}

// TestStatusOldDaemon: a daemon without the route answers 404, which the
// CLI passes on as the daemon's answer.
func TestStatusOldDaemon(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.NotFoundHandler()}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	_, err = client.New(sock).Status(t.Context())
	var se *client.StatusError
	if !errors.As(err, &se) || se.Code != http.StatusNotFound {
		t.Errorf("err %v, want a StatusError with 404", err)
	}
}

func TestStatusShowsDroppedLogs(t *testing.T) {
	st := sampleStatus()
	st.LogsDropped = &wire.LogDrops{Dropping: true, Since: time.Now(), Lines: 1200, Bytes: 150 << 10,
		ByFunction: map[string]uint64{"api": 200, "echo": 1000}, LastError: "write x: no space left on device"}
	var buf bytes.Buffer
	fetch := func(context.Context) (wire.SystemStatus, error) { return st, nil }
	if err := runStatus(t.Context(), fetch, "", &buf); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Logs dropped:  1200 lines (150 KiB), dropping since ", ": echo 1000, api 200; last error: write x: no space left on device\n"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, buf.String())
		}
	}
}
