package function

import (
	"errors"
	"strings"
	"testing"
)

func TestParseMemory(t *testing.T) {
	for _, tc := range []struct {
		q       string
		want    int64
		wantErr string // part of the message; "" for valid
	}{
		{"128Mi", 128 << 20, ""},
		{"1G", 1e9, ""},
		{"512Gi", 512 << 30, ""},
		{"1023Gi", 1023 << 30, ""},
		{"4194304", 4 << 20, ""},
		{" 64Mi ", 64 << 20, ""},
		{"1Ti", 0, "limit of 1Ti"},
		{"1.5T", 0, "limit of 1Ti"},
		{"9e18", 0, "limit of 1Ti"},
		{"1e300Ki", 0, "limit of 1Ti"},
		{"NaN", 0, "not a quantity"},
		{"NaNMi", 0, "not a quantity"},
		{"Inf", 0, "not a quantity"},
		{"+InfGi", 0, "not a quantity"},
		{"infinity", 0, "not a quantity"},
		{"-1Mi", 0, "not a quantity"},
		{"0", 0, "not a quantity"},
		{"12Q", 0, "not a quantity"},
		{"", 0, "not a quantity"},
		{"1Ki", 0, "below the 4Mi"},
	} {
		got, err := ParseMemory(tc.q)
		if tc.wantErr == "" {
			if err != nil || got != tc.want {
				t.Errorf("ParseMemory(%q) = %d, %v; want %d", tc.q, got, err, tc.want)
			}
			continue
		}
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "memory") {
			t.Errorf("ParseMemory(%q) = %d, %v; want ErrInvalid naming memory and %q", tc.q, got, err, tc.wantErr)
		}
	}
}

func TestParseCPU(t *testing.T) {
	for _, tc := range []struct {
		q       string
		want    int64
		wantErr string
	}{
		{"500m", 500, ""},
		{"0.5", 500, ""},
		{"2", 2000, ""},
		{"1024", 1024000, ""},
		{"1024000m", 1024000, ""},
		{"1m", 1, ""},
		{"1025", 0, "limit of 1024 cores"},
		{"1e30", 0, "limit of 1024 cores"},
		{"1e30m", 0, "limit of 1024 cores"},
		{"NaN", 0, "not a quantity"},
		{"NaNm", 0, "not a quantity"},
		{"Inf", 0, "not a quantity"},
		{"-Inf", 0, "not a quantity"},
		{"infm", 0, "not a quantity"},
		{"0.0001", 0, "not a quantity"},
		{"-1", 0, "not a quantity"},
		{"lots", 0, "not a quantity"},
	} {
		got, err := ParseCPU(tc.q)
		if tc.wantErr == "" {
			if err != nil || got != tc.want {
				t.Errorf("ParseCPU(%q) = %d, %v; want %d", tc.q, got, err, tc.want)
			}
			continue
		}
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "cpu") {
			t.Errorf("ParseCPU(%q) = %d, %v; want ErrInvalid naming cpu and %q", tc.q, got, err, tc.wantErr)
		}
	}
}

// Validate refuses what a container cannot be given, naming the field.
func TestValidateRefuses(t *testing.T) {
	for _, tc := range []struct {
		name    string
		edit    func(*Spec)
		wantErr string
	}{
		{"limits cpu NaN", func(s *Spec) { s.Limits = &Resources{CPU: "NaN"} }, `limits: invalid: cpu "NaN"`},
		{"limits cpu Inf", func(s *Spec) { s.Limits = &Resources{CPU: "Inf"} }, `limits: invalid: cpu "Inf"`},
		{"limits cpu 1e30", func(s *Spec) { s.Limits = &Resources{CPU: "1e30"} }, `limits: invalid: cpu "1e30" is above the limit of 1024 cores`},
		{"limits memory 1Ti", func(s *Spec) { s.Limits = &Resources{Memory: "1Ti"} }, `limits: invalid: memory "1Ti" is not below the limit of 1Ti`},
		{"limits memory 9e18", func(s *Spec) { s.Limits = &Resources{Memory: "9e18"} }, `limits: invalid: memory "9e18"`},
		{"requests cpu NaN", func(s *Spec) { s.Requests = &Resources{CPU: "NaN"} }, `requests: invalid: cpu "NaN"`},
		{"requests memory 9e18", func(s *Spec) { s.Requests = &Resources{Memory: "9e18"} }, `requests: invalid: memory "9e18"`},
		{"env name with newline", func(s *Spec) { s.Env = map[string]string{"A\nB": "1"} }, `environment variable name "A\nB"`},
		{"env name with CR", func(s *Spec) { s.Env = map[string]string{"A\r": "1"} }, `environment variable name "A\r"`},
		{"env name with space", func(s *Spec) { s.Env = map[string]string{"A B": "1"} }, `environment variable name "A B"`},
		{"env name with =", func(s *Spec) { s.Env = map[string]string{"A=B": "1"} }, `environment variable name "A=B"`},
		{"env name with NUL", func(s *Spec) { s.Env = map[string]string{"A\x00": "1"} }, `environment variable name "A\x00"`},
		{"empty env name", func(s *Spec) { s.Env = map[string]string{"": "1"} }, `environment variable name is empty`},
		{"env value with NUL", func(s *Spec) { s.Env = map[string]string{"TOKEN": "a\x00b"} }, `environment variable TOKEN: value contains a NUL byte`},
		{"envProcess with NUL", func(s *Spec) { s.EnvProcess = "cat\x00" }, `envProcess "cat\x00" contains a NUL byte`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Spec{Name: "fn", Image: "img:1"}
			tc.edit(&s)
			err := s.Validate()
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Validate = %v, want ErrInvalid containing %q", err, tc.wantErr)
			}
		})
	}
}

// What real functions send stays valid.
func TestValidateAccepts(t *testing.T) {
	s := Spec{Name: "fn", Image: "img:1", EnvProcess: "cat",
		Env:      map[string]string{"PEM": "-----BEGIN-----\nabc\n-----END-----\n", "lower_case.dot": "x", "EMPTY": ""},
		Limits:   &Resources{Memory: "512Gi", CPU: "1024"},
		Requests: &Resources{Memory: "4Mi", CPU: "1m"}}
	if err := s.Validate(); err != nil {
		t.Errorf("Validate = %v", err)
	}
}
