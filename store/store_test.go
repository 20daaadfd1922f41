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
