package scale_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/netip"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/emberfaas/ember/function"
	"github.com/emberfaas/ember/scale"
)

// hashBeforeNormalising is Spec.Hash as ember computed it before specs
// were normalised: of the fields as they were, "{}" and null apart.
func hashBeforeNormalising(s function.Spec) string {
	h := sha256.New()
	_ = json.NewEncoder(h).Encode([]any{s.Image, s.EnvProcess, s.Env, s.Labels, s.Annotations,
		s.Secrets, s.Limits, s.Requests, s.ReadOnlyRootFilesystem})
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// A replica that an older daemon started from faas-cli's "labels":{} is
// adopted as current after a restart, and neither faas-cli's nor the CLI's
// form of the same spec rolls it afterwards.
func TestRecoverKeepsReplicaOfFaasCLISpec(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sent := function.Spec{Name: "a", Image: "a:1", Labels: map[string]string{}, Annotations: map[string]string{}}
		stored := function.Spec{Name: "a", Image: "a:1"} // what the store gives back
		e := newEnv(t, scale.Config{}, stored)
		e.rt.add(function.Instance{ID: "a-old", Function: "a", Hash: hashBeforeNormalising(sent),
			IP: netip.MustParseAddr("10.0.0.100"), Pid: 100, Status: function.TaskRunning,
			Created: time.Now().Add(-time.Hour), Cgroup: "/ember/a-old"})
		e.start()
		synctest.Wait()
		check := func(when string) {
			t.Helper()
			if got := e.rt.createdFor("a"); len(got) != 0 {
				t.Errorf("%s: created %v, want the old replica kept", when, got)
			}
			if got, want := e.readyIDs("a"), []string{"a-old"}; !slices.Equal(got, want) {
				t.Errorf("%s: ready %v, want %v", when, got, want)
			}
		}
		check("after the restart")
		e.deploy(sent)
		synctest.Wait()
		check("after faas-cli's unchanged deploy")
		e.deploy(function.Spec{Name: "a", Image: "a:1"})
		synctest.Wait()
		check("after the CLI's unchanged deploy")
		e.deploy(function.Spec{Name: "a", Image: "a:2"})
		synctest.Wait()
		if got := e.rt.createdFor("a"); len(got) != 1 {
			t.Errorf("after a changed deploy: created %d replicas, want 1", len(got))
		}
	})
}
