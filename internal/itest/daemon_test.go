package itest

import (
	"strings"
	"testing"
)

func TestProcessEnvIsMinimal(t *testing.T) {
	t.Setenv("EMBER_HEALTH_INTERVAL", "1h")
	t.Setenv("HTTPS_PROXY", "http://203.0.113.1:3128")
	t.Setenv("GOMAXPROCS", "1")
	env := ProcessEnv("EMBER_SOCKET=/x.sock")
	if len(env) != 2 || !strings.HasPrefix(env[0], "PATH=") || env[1] != "EMBER_SOCKET=/x.sock" {
		t.Errorf("ProcessEnv = %q, want PATH and the extra variable only", env)
	}
}

func TestFlagValue(t *testing.T) {
	args := []string{"daemon", "--health-interval", "500ms", "--auth=false", "--health-interval=2s", "--subnet"}
	for _, tc := range []struct {
		name, want string
		ok         bool
	}{
		{"health-interval", "2s", true}, // the last one wins, as for the daemon
		{"auth", "false", true},
		{"subnet", "", false}, // no value follows
		{"drain-timeout", "", false},
		{"health", "", false},
	} {
		if got, ok := FlagValue(args, tc.name); got != tc.want || ok != tc.ok {
			t.Errorf("FlagValue(%q) = %q, %v; want %q, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
	d := &Daemon{DaemonOptions: DaemonOptions{Containerd: &Containerd{}, Extra: []string{"--wake-timeout", "9s"}}}
	if v, ok := d.Flag("wake-timeout"); v != "9s" || !ok {
		t.Errorf("Flag(wake-timeout) before Start = %q, %v; want 9s from Extra", v, ok)
	}
}
