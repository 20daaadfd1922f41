package store

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/emberfaas/ember/function"
)

func TestNamespacesPersist(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ember.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	staging := function.Namespace{Name: "staging", Labels: map[string]string{"openfaas": "1"}, Annotations: map[string]string{"owner": "ops"}}
	if err := s.CreateNamespace(staging); err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{"staging", function.DefaultNamespace} {
		if err := s.CreateNamespace(function.Namespace{Name: ns}); !errors.Is(err, function.ErrExists) {
			t.Errorf("create %s again = %v, want ErrExists", ns, err)
		}
	}
	if err := s.UpdateNamespace(function.Namespace{Name: "nope"}); !errors.Is(err, function.ErrNotFound) {
		t.Errorf("update missing = %v, want ErrNotFound", err)
	}
	if err := s.CreateNamespace(function.Namespace{Name: "No"}); !errors.Is(err, function.ErrInvalid) {
		t.Errorf("create invalid = %v, want ErrInvalid", err)
	}
	if err := s.DeleteNamespace(function.DefaultNamespace); !errors.Is(err, function.ErrInvalid) {
		t.Errorf("delete default = %v, want ErrInvalid", err)
	}
	s.Close()

	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Namespaces()
	if err != nil {
		t.Fatal(err)
	}
	want := []function.Namespace{{Name: function.DefaultNamespace, Labels: map[string]string{"openfaas": "1"}}, staging}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("namespaces after reopen (-want +got):\n%s", diff)
	}
	if err := s.DeleteNamespace("staging"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Namespace("staging"); !errors.Is(err, function.ErrNotFound) {
		t.Errorf("deleted namespace = %v, want ErrNotFound", err)
	}
}

func TestSecretsKeyedByNamespace(t *testing.T) {
	s, err := OpenSecrets(filepath.Join(t.TempDir(), "secrets"))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"db": "a", "db.staging": "b"} {
		if err := s.Create(k, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Create("db.openfaas-fn", []byte("c")); !errors.Is(err, function.ErrInvalid) {
		t.Errorf("create with the default written out = %v, want ErrInvalid", err)
	}
	names, err := s.Names()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"db", "db.staging"}, names); diff != "" {
		t.Errorf("names (-want +got):\n%s", diff)
	}
	if v, _ := s.Value("db.staging"); string(v) != "b" {
		t.Errorf("staging's db = %q, want b", v)
	}
}
