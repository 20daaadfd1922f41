package function

import (
	"errors"
	"testing"
	"time"
)

func TestParseTimeout(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"30", 30 * time.Second, true},
		{" 5 ", 5 * time.Second, true},
		{"1m30s", 90 * time.Second, true},
		{"250ms", 250 * time.Millisecond, true},
		{"0", 0, true},
		{"-1", 0, false},
		{"-5s", 0, false},
		{"abc", 0, false},
		{"", 0, false},
		{"25h", 0, false},
		{"3600000", 0, false},
	} {
		got, err := ParseTimeout(tc.in)
		if tc.ok != (err == nil) || got != tc.want {
			t.Errorf("ParseTimeout(%q) = %v, %v; want %v, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseTimeout(%q) error %v is not ErrInvalid", tc.in, err)
		}
	}
}

func TestUpstreamTimeout(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want time.Duration
	}{
		{nil, 0},
		{map[string]string{"read_timeout": "5s"}, 0},
		{map[string]string{"exec_timeout": "2s"}, 2 * time.Second},
		{map[string]string{"write_timeout": "10", "exec_timeout": "2s"}, 10 * time.Second},
		{map[string]string{"exec_timeout": "1m", "write_timeout": "10s"}, time.Minute},
	} {
		if got := (Spec{Env: tc.env}).UpstreamTimeout(); got != tc.want {
			t.Errorf("UpstreamTimeout(%v) = %v, want %v", tc.env, got, tc.want)
		}
	}
}

func TestValidateTimeouts(t *testing.T) {
	s := Spec{Name: "f", Image: "img:1", Env: map[string]string{"exec_timeout": "soon"}}
	err := s.Validate()
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("Validate = %v, want ErrInvalid", err)
	}
	if want := `invalid: env exec_timeout="soon" is not a number of seconds or a duration such as 30s, up to 24h0m0s`; err.Error() != want {
		t.Errorf("Validate = %q, want %q", err, want)
	}
	s.Env["exec_timeout"] = "2s"
	if err := s.Validate(); err != nil {
		t.Errorf("Validate = %v, want nil", err)
	}
}
