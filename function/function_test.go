package function

import (
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
