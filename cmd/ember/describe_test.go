package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/emberfaas/ember/api/wire"
	"github.com/emberfaas/ember/client"
	"github.com/emberfaas/ember/function"
)

func TestDescribeTable(t *testing.T) {
	started := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	fs := wire.FunctionStatus{Name: "echo", Image: "echo:1", Replicas: 2, AvailableReplicas: 2,
		InvocationCount: 1200, InvocationRate: 2.5,
		Instances: []function.Replica{
			{ID: "echo-a", IP: "10.63.0.2", State: "ready", Started: started, ReadyAfterSeconds: 0.412,
				MemoryBytes: 18.4 * 1024 * 1024, CPU: 12.4},
			{ID: "echo-b", IP: "10.63.0.3", State: "ready", Started: started, Adopted: true, MemoryBytes: 9 << 20, CPU: 0.3},
			{ID: "echo-c", State: "starting", Started: started},
		}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(fs)
	}))
	defer srv.Close()
	var buf bytes.Buffer
	if err := runDescribe(t.Context(), client.New(srv.URL), "echo", "", &buf); err != nil {
		t.Fatal(err)
	}
	got := buf.String()
	for _, want := range []string{
		"Invocations:  1200 (2.5/s over the last minute)\n",
		"READY AFTER  RESTARTS  MEMORY    CPU  LAST EXIT",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("describe lacks %q:\n%s", want, got)
		}
	}
	for _, row := range []struct{ id, after, mem, cpu string }{
		{"echo-a", "412ms", "18.4 MiB", "12m"},
		{"echo-b", "adopted", "9.0 MiB", "<1m"},
		{"echo-c", "-", "-", "0m"},
	} {
		var line string
		for l := range strings.SplitSeq(got, "\n") {
			if strings.HasPrefix(l, row.id+" ") {
				line = l
			}
		}
		for _, cell := range []string{row.after, row.mem, row.cpu} {
			if !strings.Contains(line, "  "+cell+"  ") {
				t.Errorf("row %s lacks %q: %q", row.id, cell, line)
			}
		}
	}
}
