package store

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/emberfaas/ember/function"
)

func TestSecrets(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "secrets")
	s, err := OpenSecrets(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Create("db", []byte("pw1")); err != nil {
		t.Fatal(err)
	}
	if err := s.Create("db", []byte("pw2")); !errors.Is(err, function.ErrExists) {
		t.Errorf("second create: %v, want ErrExists", err)
	}
	if err := s.Update("nope", []byte("x")); !errors.Is(err, function.ErrNotFound) {
		t.Errorf("update of missing: %v", err)
	}
	if err := s.Update("db", []byte("pw2")); err != nil {
		t.Fatal(err)
	}
	if v, _ := s.Value("db"); string(v) != "pw2" {
		t.Errorf("value %q", v)
	}
	st, _ := os.Stat(filepath.Join(dir, "db"))
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	if err := s.Create("../etc", []byte("x")); !errors.Is(err, function.ErrInvalid) {
		t.Errorf("path traversal name: %v", err)
	}
	names, _ := s.Names()
	if d := cmp.Diff([]string{"db"}, names); d != "" {
		t.Error(d)
	}
	if err := s.Delete("db"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete("db"); !errors.Is(err, function.ErrNotFound) {
		t.Errorf("second delete: %v", err)
	}
}
