package store

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
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

// A write that fails half-way, as on a full disk, keeps the old value,
// leaves no temporary or partial file, and says the state dir is full.
func TestSecretWriteFailureLeavesNothing(t *testing.T) {
	state := t.TempDir()
	dir := filepath.Join(state, "secrets")
	s, err := OpenSecrets(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Create("db", []byte("old")); err != nil {
		t.Fatal(err)
	}
	s.writeFile = func(name string, data []byte, perm os.FileMode) error {
		// What os.WriteFile does when the disk fills mid-way: the file
		// exists, holds a prefix, and the error is ENOSPC.
		if err := os.WriteFile(name, data[:len(data)/2], perm); err != nil {
			return err
		}
		return &os.PathError{Op: "write", Path: name, Err: syscall.ENOSPC}
	}
	for _, op := range []struct {
		name string
		do   func() error
	}{
		{"create", func() error { return s.Create("api", []byte("new-value")) }},
		{"update", func() error { return s.Update("db", []byte("new-value")) }},
	} {
		err := op.do()
		if !errors.Is(err, function.ErrNoSpace) || !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("%s: %v, want ErrNoSpace wrapping ENOSPC", op.name, err)
		}
		if want := "state dir " + state + " is full"; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want it to say %q", op.name, err, want)
		}
	}
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if d := cmp.Diff([]string{"db"}, names); d != "" {
		t.Errorf("files in the secrets dir (-want +got):\n%s", d)
	}
	if v, _ := s.Value("db"); string(v) != "old" {
		t.Errorf("value after a failed update: %q, want the old one", v)
	}
}

// A temporary file a crash left behind is removed on open.
func TestOpenSecretsRemovesStaleTemp(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "secrets")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "db.tmp"), []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenSecrets(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "db.tmp")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale db.tmp: %v, want it gone", err)
	}
}
