package runtime

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/containerd/containerd/errdefs"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/emberfaas/ember/function"
)

func TestUnreachable(t *testing.T) {
	down := status.Error(codes.Unavailable, "error reading from server: EOF")
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"grpc unavailable", down, true},
		{"grpc unavailable wrapped", fmt.Errorf("wait x: %w", down), true},
		{"translated by the client", errdefs.FromGRPC(down), true},
		{"translated and wrapped", fmt.Errorf("load x: %w", errdefs.FromGRPC(down)), true},
		{"eof", fmt.Errorf("probe: %w", io.EOF), true},
		{"not found", errdefs.FromGRPC(status.Error(codes.NotFound, "no such task")), false},
		{"not found, ours", fmt.Errorf("task x: %w", ErrNotFound), false},
		{"canceled", context.Canceled, false},
		{"other", errors.New("probe in x exited with code 2"), false},
	} {
		if got := unreachable(tc.err); got != tc.want {
			t.Errorf("%s: unreachable(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

// The loss of containerd and its return are logged once each, however
// many replicas' waits and probes run into it.
func TestConnStateLogsOnce(t *testing.T) {
	var buf bytes.Buffer
	r := &Runtime{log: slog.New(slog.NewTextHandler(&buf, nil))}
	down := status.Error(codes.Unavailable, "connection refused")
	for range 5 {
		err := r.unavailable(fmt.Errorf("probe: %w", down))
		if !errors.Is(err, function.ErrRuntimeUnavailable) {
			t.Fatalf("unavailable(%v) = %v, want it to wrap ErrRuntimeUnavailable", down, err)
		}
		r.lost(down)
	}
	for range 3 {
		r.regained()
	}
	if err := r.unavailable(ErrNotFound); !errors.Is(err, ErrNotFound) || errors.Is(err, function.ErrRuntimeUnavailable) {
		t.Errorf("unavailable(ErrNotFound) = %v, want it unchanged", err)
	}
	logs := buf.String()
	if n := strings.Count(logs, "containerd unreachable"); n != 1 {
		t.Errorf("loss logged %d times, want once:\n%s", n, logs)
	}
	if n := strings.Count(logs, "containerd reachable again"); n != 1 {
		t.Errorf("return logged %d times, want once:\n%s", n, logs)
	}
}
