package itest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// The real OpenFaaS client and watchdogs are not Go modules the proxy
// serves, so they come as binaries beside the project (shared/tools/openfaas,
// see its README). Users run these, so the tests do too.

// OpenFaaSTool finds one of faas-cli, classic-watchdog or of-watchdog: at
// $ENV (FAAS_CLI, CLASSIC_WATCHDOG, OF_WATCHDOG), then in
// ../shared/tools/openfaas beside the module root, then in PATH. Where none
// is found it skips t with a message saying where it looked, except in CI,
// where the tools are always present and a missing one fails the test.
func OpenFaaSTool(t testing.TB, name string) string {
	t.Helper()
	env := map[string]string{"faas-cli": "FAAS_CLI", "classic-watchdog": "CLASSIC_WATCHDOG", "of-watchdog": "OF_WATCHDOG"}[name]
	if p := os.Getenv(env); env != "" && p != "" {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	dir := "../shared/tools/openfaas"
	if root, err := ModuleRoot(t.Context()); err == nil {
		dir = filepath.Join(root, "..", "shared", "tools", "openfaas")
		if p := filepath.Join(dir, name); isExecutable(p) {
			return p
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	msg := name + " not found: set $" + env + ", put it in " + dir + " (see its README), or in PATH"
	if mustRunIntegration() {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}
