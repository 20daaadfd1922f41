package scale_test

import (
	"testing"
	"testing/synctest"

	"github.com/emberfaas/ember/function"
	"github.com/emberfaas/ember/scale"
)

// Setting bounds moves the count into them without rolling the replicas,
// and the bounds outlive an unchanged redeploy.
func TestSetBoundsRollsNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, scale.Config{})
		e.start()
		e.deploy(function.Spec{Name: "a", Image: "a:1"})
		synctest.Wait()
		lo, hi := 2, 5
		if err := e.c.SetBounds(t.Context(), "a", &lo, &hi); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if got := len(e.readyIDs("a")); got != 2 {
			t.Errorf("%d ready replicas, want min 2", got)
		}
		if got := len(e.rt.createdFor("a")); got != 2 {
			t.Errorf("created %d replicas, want 2 (the first kept)", got)
		}
		e.deploy(function.Spec{Name: "a", Image: "a:1"})
		synctest.Wait()
		sp, _ := e.c.Spec("a")
		if sp.MinReplicas() != 2 || sp.MaxReplicas() != 5 {
			t.Errorf("bounds after redeploy [%d, %d], want [2, 5]", sp.MinReplicas(), sp.MaxReplicas())
		}
		if got := len(e.rt.createdFor("a")); got != 2 {
			t.Errorf("created %d replicas after an unchanged redeploy, want 2", got)
		}
		bad := 6
		if err := e.c.SetBounds(t.Context(), "a", &bad, nil); err == nil {
			t.Error("min 6 above max 5 accepted")
		}
	})
}
