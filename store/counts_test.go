package store

import (
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestInvocationsSurviveReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ember.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Invocations(); err != nil || len(got) != 0 {
		t.Fatalf("Invocations() on a new store = %v, %v; want none", got, err)
	}
	if err := s.PutInvocations(map[string]uint64{"a": 3, "b": 1 << 40}); err != nil {
		t.Fatal(err)
	}
	// Only a changes: b keeps its total.
	if err := s.PutInvocations(map[string]uint64{"a": 7}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Invocations()
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(map[string]uint64{"a": 7, "b": 1 << 40}, got); d != "" {
		t.Errorf("Invocations() after reopen (-want +got):\n%s", d)
	}
}
