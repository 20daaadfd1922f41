//go:build integration

package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/emberfaas/ember/function"
)

// A function deployed by the real faas-cli keeps its replicas through a
// SIGKILL of the daemon and a restart, and through unchanged redeploys by
// faas-cli and by `ember deploy -f` of the same stack file: faas-cli's
// "labels":{} and the store's nil are one spec.
func TestRestartKeepsFaasCLIReplicas(t *testing.T) {
	e := setup(t)
	d := newDaemon(t, e, "--auth=true")
	faas := faasCLI(t, d)
	dir := t.TempDir()
	stackFile := filepath.Join(dir, "stack.yml")
	stackYAML := "version: 1.0\nprovider:\n  name: openfaas\nfunctions:\n  keep:\n    image: " + e.echo +
		"\n    environment: {GREETING: hi}\n    labels: {com.openfaas.scale.min: 2}\n"
	if err := os.WriteFile(stackFile, []byte(stackYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	// ready waits for two ready replicas and returns their IDs, sorted.
	ready := func(when string) []string {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			f, err := d.client.Describe(context.Background(), "keep")
			var ids []string
			if err == nil {
				for _, r := range f.Instances {
					if r.State == function.StateReady {
						ids = append(ids, r.ID)
					}
				}
			}
			if len(ids) == 2 && len(f.Instances) == 2 {
				slices.Sort(ids)
				return ids
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no 2 ready replicas in 30s: %+v %v", when, f.Instances, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// steady checks for a while that the replicas stay those of before.
	steady := func(when string, want []string) {
		t.Helper()
		for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
			if got := ready(when); !slices.Equal(got, want) {
				t.Fatalf("%s: replicas %v, want the same %v", when, got, want)
			}
		}
	}

	faas("deploy", "-f", stackFile)
	before := ready("after faas-cli deploy")

	d.kill9()
	d.start()
	steady("after SIGKILL and restart", before)

	faas("deploy", "-f", stackFile)
	steady("after an unchanged faas-cli deploy", before)

	d.mustEmber("deploy", "-f", stackFile)
	steady("after an unchanged ember deploy -f", before)

	d.mustEmber("deploy", "keep", "--image", e.echo, "--env", "GREETING=hi", "--label", "com.openfaas.scale.min=2")
	steady("after an unchanged ember deploy NAME", before)
}
