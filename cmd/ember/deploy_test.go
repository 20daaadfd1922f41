package main

import (
	"strings"
	"testing"
)

// deploy's flags are checked with the daemon's own validation before
// anything is sent: the error names what was wrong.
func TestDeployRefusesInvalidFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"cpu NaN", []string{"--cpu-limit", "NaN"}, `limits: invalid: cpu "NaN" is not a quantity`},
		{"cpu Inf", []string{"--cpu-limit", "Inf"}, `cpu "Inf" is not a quantity`},
		{"cpu 1e30", []string{"--cpu-limit", "1e30"}, `cpu "1e30" is above the limit of 1024 cores`},
		{"memory 1Ti", []string{"--memory-limit", "1Ti"}, `memory "1Ti" is not below the limit of 1Ti`},
		{"memory 9e18", []string{"--memory-limit", "9e18"}, `memory "9e18" is not below the limit of 1Ti`},
		{"env key newline", []string{"-e", "A\nB=1"}, `environment variable name "A\nB"`},
		{"env value NUL", []string{"-e", "K=a\x00b"}, `environment variable K: value contains a NUL byte`},
		{"bad label", []string{"-l", "com.openfaas.scale.min=-1"}, `label com.openfaas.scale.min="-1"`},
		{"bad secret", []string{"--secret", "Db"}, `secret: invalid: name "Db"`},
		{"zero timeout", []string{"--timeout", "0s"}, `--timeout 0s: want a positive duration`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newStackDaemon(t)
			_, err := d.ember(t, append([]string{"deploy", "fn", "--image", "ghcr.io/acme/fn:1"}, tc.args...)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want one containing %q", err, tc.want)
			}
			if n := len(d.requests()); n != 0 {
				t.Errorf("%d requests sent for invalid flags", n)
			}
		})
	}
}
