//go:build integration

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/emberfaas/ember/internal/itest"
)

// A bridge of the daemon's name that holds another address (left by a
// daemon with another --subnet, or another program's) makes the daemon
// refuse to start, saying which address it has, which one it wants and
// what to do, instead of failing every create.
func TestBridgeWithOtherAddressRefusesStart(t *testing.T) {
	e := setup(t)
	var b [3]byte
	rand.Read(b[:])
	bridge := "embx" + hex.EncodeToString(b[:])
	base := 200 + os.Getpid()%40
	has := fmt.Sprintf("10.%d.251.1/24", base)
	subnet := fmt.Sprintf("10.%d.252.0/24", base)
	want := fmt.Sprintf("10.%d.252.1/24", base)
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	ip("link", "add", bridge, "type", "bridge")
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "link", "delete", bridge).CombinedOutput(); err != nil {
			t.Errorf("ip link delete %s: %v\n%s", bridge, err, out)
		}
	})
	ip("addr", "add", has, "dev", bridge)

	dir := t.TempDir()
	d, err := itest.NewDaemon(itest.DaemonOptions{Bin: e.bin, Containerd: e.containerd, Dir: dir,
		NamespacePrefix: "e2e-", BridgePrefix: "embx", Subnet: subnet})
	if err != nil {
		t.Fatal(err)
	}
	args := d.Args()
	for i := range args {
		if args[i] == "--bridge" {
			args[i+1] = bridge
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, e.bin, args...).CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("daemon still running after 30s, want it to refuse to start:\n%s", out)
	}
	if err == nil {
		t.Fatalf("daemon exited 0, want an error:\n%s", out)
	}
	wantMsg := fmt.Sprintf("bridge %s has %s but subnet %s wants %s: delete it with `ip link delete %s` if no other program uses it, or start ember with --subnet %s",
		bridge, has, subnet, want, bridge, strings.Replace(has, ".1/24", ".0/24", 1))
	if !strings.Contains(string(out), wantMsg) {
		t.Errorf("output:\n%s\nwant it to contain:\n%s", out, wantMsg)
	}
	t.Logf("%v; output: %s", err, strings.TrimSpace(string(out)))
}
