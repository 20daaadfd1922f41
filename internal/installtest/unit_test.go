package installtest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// requireTool skips when a tool is missing on a developer's machine and
// fails in CI, where `make test` installs it first (install.sh --test-deps).
func requireTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	msg := name + " not found: install the " + pkg + " package (make deps does)"
	if os.Getenv("CI") == "true" || os.Getenv("EMBER_REQUIRE_INTEGRATION") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// verifyUnit runs `systemd-analyze verify` on a unit file and fails on any
// output: verify exits 0 on unknown keys and bad values, which it only
// prints.
func verifyUnit(t *testing.T, path string) {
	t.Helper()
	analyze := requireTool(t, "systemd-analyze", "systemd")
	if _, err := os.Stat("/lib/systemd/system/containerd.service"); err != nil {
		if _, err2 := os.Stat("/usr/lib/systemd/system/containerd.service"); err2 != nil {
			requireTool(t, "containerd.service (a unit the ember unit requires)", "containerd")
		}
	}
	cmd := exec.Command(analyze, "verify", path)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil || strings.TrimSpace(out.String()) != "" {
		t.Errorf("systemd-analyze verify %s: %v\n%s", path, err, out.String())
	}
}

// TestUnitVerifies checks systemd/ember.service as it is in the checkout,
// with ExecStart pointed at an executable that exists here (verify checks
// that it does).
func TestUnitVerifies(t *testing.T) {
	data, err := os.ReadFile("../../systemd/ember.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := string(data)
	const exec = "ExecStart=/usr/local/bin/ember daemon"
	if !strings.Contains(unit, "\n"+exec+"\n") {
		t.Fatalf("unit lacks %q", exec)
	}
	for _, want := range []string{"Type=notify", "Restart=always", "Requires=containerd.service", "After=containerd.service network-online.target"} {
		if !strings.Contains(unit, "\n"+want+"\n") {
			t.Errorf("unit lacks %q", want)
		}
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ember.service")
	unit = strings.Replace(unit, exec, "ExecStart="+self+" daemon", 1)
	if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	verifyUnit(t, path)
}
