package main

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/emberfaas/ember/api/wire"
	"github.com/emberfaas/ember/function"
)

func TestListState(t *testing.T) {
	type states = map[function.State]int
	for _, tc := range []struct {
		name string
		f    wire.FunctionStatus
		want string
	}{
		{"all ready", wire.FunctionStatus{Phase: "active", Replicas: 2, AvailableReplicas: 2, ReplicaStates: states{"ready": 2}}, "ready"},
		{"rolling update: extra new replica starting", wire.FunctionStatus{Phase: "active", Replicas: 1, AvailableReplicas: 1, ReplicaStates: states{"ready": 1, "starting": 1}}, "ready"},
		{"old replica draining", wire.FunctionStatus{Phase: "active", Replicas: 1, AvailableReplicas: 1, ReplicaStates: states{"ready": 1, "stopping": 1}}, "ready"},
		{"first replica starting", wire.FunctionStatus{Phase: "active", Replicas: 1, ReplicaStates: states{"starting": 1}}, "starting"},
		{"pulling: no replica yet", wire.FunctionStatus{Phase: "active", Replicas: 1}, "starting"},
		{"some ready, fewer than desired", wire.FunctionStatus{Phase: "active", Replicas: 3, AvailableReplicas: 1, ReplicaStates: states{"ready": 1, "starting": 2}}, "degraded"},
		{"one unhealthy beside enough ready", wire.FunctionStatus{Phase: "active", Replicas: 2, AvailableReplicas: 2, ReplicaStates: states{"ready": 2, "unhealthy": 1}}, "degraded"},
		{"crashing: exited, none ready", wire.FunctionStatus{Phase: "active", Replicas: 1, ReplicaStates: states{"exited": 1}}, "degraded"},
		{"exited while another starts", wire.FunctionStatus{Phase: "active", Replicas: 2, ReplicaStates: states{"exited": 1, "starting": 1}}, "degraded"},
		{"paused", wire.FunctionStatus{Phase: "paused", Replicas: 0, ReplicaStates: states{"paused": 2}}, "paused"},
		{"zero", wire.FunctionStatus{Phase: "zero", ReplicaStates: states{"zero": 1}}, "zero"},
		{"nothing desired", wire.FunctionStatus{Phase: "active"}, "zero"},
		{"older daemon, ready", wire.FunctionStatus{Replicas: 2, AvailableReplicas: 2}, "ready"},
		{"older daemon, partly ready", wire.FunctionStatus{Replicas: 2, AvailableReplicas: 1}, "degraded"},
	} {
		if got := listState(tc.f); got != tc.want {
			t.Errorf("%s: %+v: got %q, want %q", tc.name, tc.f, got, tc.want)
		}
	}
}

func sampleList() []wire.FunctionStatus {
	return []wire.FunctionStatus{
		{Name: "echo", Image: "ghcr.io/acme/echo:1", InvocationCount: 12, InvocationRate: 0.2, Replicas: 2, AvailableReplicas: 2,
			Phase: "active", ReplicaStates: map[function.State]int{"ready": 2}},
		{Name: "idle", Image: "idle:1", InvocationCount: 3, Phase: "zero", ReplicaStates: map[function.State]int{"zero": 1}},
		{Name: "crash", Image: "crash:1", Replicas: 1, Phase: "active", ReplicaStates: map[function.State]int{"exited": 1}},
	}
}

func TestListTable(t *testing.T) {
	fetch := func(context.Context) ([]wire.FunctionStatus, error) { return sampleList(), nil }
	var buf bytes.Buffer
	if err := runList(t.Context(), fetch, "", &buf); err != nil {
		t.Fatal(err)
	}
	want := "" +
		"NAME   IMAGE                STATE     INVOCATIONS  RATE   REPLICAS  READY\n" +
		"echo   ghcr.io/acme/echo:1  ready     12           0.2/s  2         2\n" +
		"idle   idle:1               zero      3            0      0         0\n" +
		"crash  crash:1              degraded  0            0      1         0\n"
	if diff := cmp.Diff(want, buf.String()); diff != "" {
		t.Errorf("list (-want +got):\n%s", diff)
	}
	if got := listColumn(buf.String(), "crash", "STATE"); got != "degraded" {
		t.Errorf("listColumn(crash, STATE) = %q, want degraded", got)
	}
}

// listColumn returns the cell of a list table in the row of function name
// and the column headed col, empty when there is none. Images hold no
// spaces, so cells split on blanks.
func listColumn(table, name, col string) string {
	lines := strings.Split(strings.TrimSpace(table), "\n")
	i := slices.Index(strings.Fields(lines[0]), col)
	if i < 0 {
		return ""
	}
	for _, l := range lines[1:] {
		if f := strings.Fields(l); len(f) > i && f[0] == name {
			return f[i]
		}
	}
	return ""
}

// TestListJSON: -o json is the API's list as it is, phase and replica
// states included.
func TestListJSON(t *testing.T) {
	fetch := func(context.Context) ([]wire.FunctionStatus, error) { return sampleList(), nil }
	var buf bytes.Buffer
	if err := runList(t.Context(), fetch, "json", &buf); err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, buf.String())
	}
	if len(got) != 3 {
		t.Fatalf("got %d functions, want 3: %s", len(got), buf.String())
	}
	for _, k := range []string{"name", "image", "invocationCount", "replicas", "availableReplicas", "createdAt", "phase", "replicaStates"} {
		if _, ok := got[0][k]; !ok {
			t.Errorf("first function lacks %q: %v", k, got[0])
		}
	}
	if diff := cmp.Diff(map[string]any{"zero": 1.0}, got[1]["replicaStates"]); diff != "" {
		t.Errorf("replicaStates of idle (-want +got):\n%s", diff)
	}
}

func TestFormatRate(t *testing.T) {
	for _, tc := range []struct {
		r    float64
		want string
	}{{0, "0"}, {0.04, "0"}, {0.05, "0.1/s"}, {2.34, "2.3/s"}, {9.94, "9.9/s"}, {12.6, "13/s"}} {
		if got := formatRate(tc.r); got != tc.want {
			t.Errorf("formatRate(%v) = %q, want %q", tc.r, got, tc.want)
		}
	}
}
