package function

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestValidateName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"echo", true},
		{"a", true},
		{"fn-1", true},
		{strings.Repeat("a", 63), true},
		{strings.Repeat("a", 64), false},
		{"", false},
		{"Echo", false},
		{"-a", false},
		{"a-", false},
		{"a/b", false},
		{"..", false},
		{"a.b", false},
		{"a_b", false},
	} {
		err := ValidateName(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("ValidateName(%q) error %v does not wrap ErrInvalid", tc.name, err)
		}
	}
}

func TestResolveRef(t *testing.T) {
	for _, tc := range []struct {
		ref, want string
		ok        bool
	}{
		{"echo", "echo", true},
		{"echo.openfaas-fn", "echo", true},
		{"echo.other", "", false},
	} {
		got, err := ResolveRef(tc.ref)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ResolveRef(%q) = %q, %v; want %q ok=%v", tc.ref, got, err, tc.want, tc.ok)
		}
	}
}

func TestHashIgnoresScaleAndTime(t *testing.T) {
	a := Spec{Name: "x", Image: "i", Env: map[string]string{"A": "1", "B": "2"}}
	b := a.Clone()
	b.Replicas = 3
	if a.Hash() != b.Hash() {
		t.Error("hash changed with replicas")
	}
	b.Env["A"] = "3"
	if a.Hash() == b.Hash() {
		t.Error("hash did not change with env")
	}
}

// A restart generation changes the hash, but only once set: specs stored
// before it existed keep their hash, so an upgrade restarts nothing.
func TestHashRestartGeneration(t *testing.T) {
	s := Spec{Name: "fn", Image: "img:1", EnvProcess: "cat", Env: map[string]string{"A": "1"},
		Labels: map[string]string{"l": "v"}, Annotations: map[string]string{"a": "b"}, Secrets: []string{"db"},
		Limits: &Resources{Memory: "128Mi"}, ReadOnlyRootFilesystem: true}
	// The hash as it was computed before restarts existed.
	h := sha256.New()
	json.NewEncoder(h).Encode([]any{s.Image, s.EnvProcess, s.Env, s.Labels, s.Annotations,
		s.Secrets, s.Limits, s.Requests, s.ReadOnlyRootFilesystem})
	if want := hex.EncodeToString(h.Sum(nil))[:16]; s.Hash() != want {
		t.Errorf("hash without a restart = %s, want the old %s", s.Hash(), want)
	}
	seen := map[string]int64{}
	for gen := range int64(4) {
		r := s.Clone()
		r.RestartGeneration = gen
		if prev, ok := seen[r.Hash()]; ok {
			t.Errorf("generation %d hashes like %d", gen, prev)
		}
		seen[r.Hash()] = gen
		if r.Hash() != r.Clone().Hash() {
			t.Errorf("generation %d: hash not stable", gen)
		}
	}
}
