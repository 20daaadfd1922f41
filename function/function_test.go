package function

import (
	"errors"
	"strings"
	"testing"
	"time"
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

func TestReadyHTTPAnnotations(t *testing.T) {
	for _, tc := range []struct {
		name    string
		ann     map[string]string
		want    ReadyHTTP
		ok      bool
		wantErr string // names the annotation; "" for valid
	}{
		{"none", nil, ReadyHTTP{Period: DefaultReadyPeriod}, false, ""},
		{"path only", map[string]string{AnnotationReadyPath: "/ready"}, ReadyHTTP{Path: "/ready", Period: DefaultReadyPeriod}, true, ""},
		{"all", map[string]string{AnnotationReadyPath: "/_/ready", AnnotationReadyInitialDelay: "2s", AnnotationReadyPeriod: "3"},
			ReadyHTTP{Path: "/_/ready", InitialDelay: 2 * time.Second, Period: 3 * time.Second}, true, ""},
		{"delay in seconds", map[string]string{AnnotationReadyPath: "/ready", AnnotationReadyInitialDelay: "5"},
			ReadyHTTP{Path: "/ready", InitialDelay: 5 * time.Second, Period: DefaultReadyPeriod}, true, ""},
		{"relative path", map[string]string{AnnotationReadyPath: "ready"}, ReadyHTTP{}, true, AnnotationReadyPath},
		{"bad delay", map[string]string{AnnotationReadyPath: "/ready", AnnotationReadyInitialDelay: "soon"}, ReadyHTTP{}, true, AnnotationReadyInitialDelay},
		{"negative delay", map[string]string{AnnotationReadyPath: "/ready", AnnotationReadyInitialDelay: "-1s"}, ReadyHTTP{}, true, AnnotationReadyInitialDelay},
		{"bad period", map[string]string{AnnotationReadyPath: "/ready", AnnotationReadyPeriod: "10s"}, ReadyHTTP{}, true, AnnotationReadyPeriod},
		{"zero period", map[string]string{AnnotationReadyPath: "/ready", AnnotationReadyPeriod: "0"}, ReadyHTTP{}, true, AnnotationReadyPeriod},
		{"bad period without path", map[string]string{AnnotationReadyPeriod: "x"}, ReadyHTTP{}, false, AnnotationReadyPeriod},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Spec{Name: "fn", Image: "img", Annotations: tc.ann}
			err := s.Validate()
			if tc.wantErr != "" {
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Validate = %v, want ErrInvalid naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Validate = %v", err)
			}
			got, ok := s.ReadyHTTP()
			if got != tc.want || ok != tc.ok {
				t.Errorf("ReadyHTTP = %+v, %v; want %+v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}
