package itest

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// RequireHost skips t unless the host can run ember's integration tests:
// root, containerd with the runc v2 shim, runc, the CNI bridge plugin,
// iptables and the go tool (images are built from source). In CI (CI=true or
// EMBER_REQUIRE_INTEGRATION=1) a missing requirement fails the test instead,
// naming every one that is missing.
func RequireHost(t testing.TB) {
	t.Helper()
	if missing := MissingHostRequirements(); len(missing) > 0 {
		msg := "integration test needs: " + strings.Join(missing, "; ")
		if mustRunIntegration() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

func mustRunIntegration() bool {
	return os.Getenv("CI") == "true" || os.Getenv("EMBER_REQUIRE_INTEGRATION") == "1"
}

// MissingHostRequirements lists what RequireHost wants and the host lacks;
// the benchmarks need the same.
func MissingHostRequirements() []string {
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	for _, p := range []string{ContainerdBinary, CNIBridgePlugin} {
		if _, err := os.Stat(p); err != nil {
			missing = append(missing, p)
		}
	}
	for _, name := range []string{"containerd-shim-runc-v2", "runc", "iptables", "go"} {
		if _, err := exec.LookPath(name); err != nil {
			missing = append(missing, name+" in PATH")
		}
	}
	return missing
}
