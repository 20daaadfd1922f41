package store

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/emberfaas/ember/function"
)

func TestFunctionsRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ember.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []function.Spec{
		{Name: "a", Image: "img:1", Env: map[string]string{"K": "V"}},
		{Name: "b", Image: "img:2", Labels: map[string]string{function.LabelScaleMin: "2"}},
	}
	for _, sp := range []function.Spec{want[1], want[0]} {
		if err := s.PutFunction(sp); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Functions()
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("Functions() mismatch (-want +got):\n%s", d)
	}
	if err := s.DeleteFunction("a"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Function("a"); !errors.Is(err, function.ErrNotFound) {
		t.Errorf("Function(a) after delete: err = %v, want ErrNotFound", err)
	}
	if err := s.DeleteFunction("a"); !errors.Is(err, function.ErrNotFound) {
		t.Errorf("second delete: err = %v, want ErrNotFound", err)
	}
	s.Close()

	// Reopen: state survives.
	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Function("b"); err != nil {
		t.Errorf("Function(b) after reopen: %v", err)
	}
}

func TestOpenLockedByAnother(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ember.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := Open(path); err == nil {
		t.Fatal("second Open of the same file succeeded")
	}
}

// A spec as faas-cli sends it ("labels":{}) comes back from the store with
// nil maps; its hash must not change on the way, or a daemon restart would
// replace every replica.
func TestRoundTripKeepsHash(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "ember.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, sp := range []function.Spec{
		{Name: "a", Image: "img:1", Labels: map[string]string{}, Annotations: map[string]string{}},
		{Name: "b", Image: "img", Env: map[string]string{}, Secrets: []string{}, Limits: &function.Resources{}},
		{Name: "c", Image: "img:1", Labels: map[string]string{"x": "y"}, Secrets: []string{"db"}},
	} {
		if err := s.PutFunction(sp); err != nil {
			t.Fatal(err)
		}
		got, err := s.Function(sp.Name)
		if err != nil {
			t.Fatal(err)
		}
		if got.Hash() != sp.Hash() {
			t.Errorf("%s: hash %s after the store, %s before", sp.Name, got.Hash(), sp.Hash())
		}
	}
}
