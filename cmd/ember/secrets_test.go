//go:build integration

package main

import (
	"slices"
	"testing"
	"time"

	"github.com/emberfaas/ember/api/wire"
	"github.com/emberfaas/ember/function"
)

func replicaIDs(f wire.FunctionStatus) []string {
	var ids []string
	for _, r := range f.Instances {
		ids = append(ids, r.ID)
	}
	slices.Sort(ids)
	return ids
}

// secretOnEveryReplica asks each replica directly, not through the
// gateway's round robin, for the secret it reads now.
func secretOnEveryReplica(t *testing.T, f wire.FunctionStatus, name, want string) {
	t.Helper()
	for _, r := range f.Instances {
		got, code, err := get("http://" + r.IP + ":8080/_/secret?name=" + name)
		if err != nil || code != 200 || got != want {
			t.Errorf("replica %s reads %s = %q (%d, %v), want %q", r.ID, name, got, code, err, want)
		}
	}
}

// TestSecretRotation updates a secret with the real faas-cli under a
// steady request loop: every running replica serves the new value at once,
// without being replaced, also after the daemon was killed and adopted
// them. `ember restart` then replaces the replicas without failing a
// request.
func TestSecretRotation(t *testing.T) {
	e := setup(t)
	d := newDaemon(t, e, "--auth=true")
	faas := faasCLI(t, d)

	d.mustEmber("secret", "create", "rot", "--from-literal", "value-1")
	d.mustEmber("deploy", "rot", "--image", e.echo, "--secret", "rot", "--label", function.LabelScaleMin+"=2")
	before := d.waitFor("rot", "2 ready", 60*time.Second, exactlyReady(2))
	ids := replicaIDs(before)
	secretOnEveryReplica(t, before, "rot", "value-1")

	// Rotation through the OpenFaaS API (PUT /system/secrets) under load.
	l := startLoad(t, d, "rot", 4)
	faas("secret", "update", "rot", "--from-literal", "value-2")
	after := d.describe("rot")
	secretOnEveryReplica(t, after, "rot", "value-2")
	for range 10 {
		if got, _, err := get(d.url("/function/rot/_/secret?name=rot")); err != nil || got != "value-2" {
			t.Errorf("through the gateway: %q %v", got, err)
		}
	}
	time.Sleep(300 * time.Millisecond)
	l.stop(t)
	if got := replicaIDs(d.describe("rot")); !slices.Equal(got, ids) {
		t.Errorf("replicas %v after the rotation, want the same %v", got, ids)
	}

	// A killed and restarted daemon adopts the replicas and rotates into
	// the directories they already mount.
	d.kill9()
	d.start()
	adopted := d.waitFor("rot", "adopted", 30*time.Second, exactlyReady(2))
	if got := replicaIDs(adopted); !slices.Equal(got, ids) {
		t.Fatalf("replicas %v after the daemon restart, want the adopted %v", got, ids)
	}
	d.mustEmber("secret", "update", "rot", "--from-literal", "value-3")
	secretOnEveryReplica(t, d.describe("rot"), "rot", "value-3")

	// A rolling restart: new replicas, no failed request.
	l = startLoad(t, d, "rot", 4)
	t0 := time.Now()
	d.mustEmber("restart", "rot")
	restarted := d.waitFor("rot", "restarted", 60*time.Second, func(f wire.FunctionStatus) bool {
		return exactlyReady(2)(f) && !slices.ContainsFunc(replicaIDs(f), func(id string) bool { return slices.Contains(ids, id) })
	})
	t.Logf("restart: all replicas replaced after %s", time.Since(t0).Round(time.Millisecond))
	time.Sleep(300 * time.Millisecond)
	l.stop(t)
	t.Logf("replicas %v -> %v", ids, replicaIDs(restarted))
	secretOnEveryReplica(t, restarted, "rot", "value-3")

	// Deleting the secret takes it out of running replicas too.
	d.mustEmber("secret", "rm", "rot")
	for _, r := range d.describe("rot").Instances {
		if _, code, _ := get("http://" + r.IP + ":8080/_/secret?name=rot"); code != 404 {
			t.Errorf("replica %s after the secret was removed: %d, want 404", r.ID, code)
		}
	}

	d.mustEmber("remove", "rot")
	d.assertNoLeftovers()
}
