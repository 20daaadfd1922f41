package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/emberfaas/ember/function"
)

func TestLogs(t *testing.T) {
	s := newServer(t, false, function.Spec{Name: "echo", Image: "echo:1"})
	r := s.call(t, "GET", "/system/logs?name=echo&tail=5&since=2024-01-01T00:00:00Z&instance=echo-1&follow=false", nil)
	if r.code != http.StatusOK {
		t.Fatalf("GET /system/logs = %d %q", r.code, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Errorf("Content-Type = %q, want application/x-ndjson", ct)
	}
	var got []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(r.body), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		got = append(got, m)
	}
	want := []map[string]any{
		{"name": "echo", "namespace": "openfaas-fn", "instance": "echo-1", "timestamp": "2024-01-02T03:04:05Z", "text": "starting"},
		{"name": "echo", "namespace": "openfaas-fn", "instance": "echo-1", "timestamp": "2024-01-02T03:04:06Z", "text": "listening on :8080"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("log lines (-want +got):\n%s", diff)
	}
	wantQ := function.LogQuery{Instance: "echo-1", Tail: 5, Since: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
	if diff := cmp.Diff(wantQ, s.logs.lastQuery()); diff != "" {
		t.Errorf("query (-want +got):\n%s", diff)
	}

	for _, tc := range []struct {
		query    string
		wantCode int
	}{
		{"name=echo.openfaas-fn&follow=true", http.StatusOK},
		{"", http.StatusBadRequest},
		{"name=nope", http.StatusNotFound},
		{"name=echo&namespace=other", http.StatusNotFound},
		{"name=echo.other", http.StatusNotFound},
		{"name=echo&tail=many", http.StatusUnprocessableEntity},
		{"name=echo&since=yesterday", http.StatusUnprocessableEntity},
	} {
		if r := s.call(t, "GET", "/system/logs?"+tc.query, nil); r.code != tc.wantCode {
			t.Errorf("GET /system/logs?%s = %d %q, want %d", tc.query, r.code, r.body, tc.wantCode)
		}
	}
	if q := s.logs.lastQuery(); !q.Follow {
		t.Errorf("follow=true gave query %+v, want Follow", q)
	}
}
