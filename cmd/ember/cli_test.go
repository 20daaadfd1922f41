//go:build integration

package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/emberfaas/ember/internal/itest"
)

// openPTY opens a pseudo-terminal pair: what the CLI writes to tty, the
// test reads from ptmx, as a terminal emulator would.
func openPTY(t *testing.T) (ptmx, tty *os.File) {
	t.Helper()
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetPointerInt(int(ptmx.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetUint32(int(ptmx.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("ptsname: %v", err)
	}
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	return ptmx, tty
}

// emberOnTTY runs the CLI with its stdout and stderr on a terminal and
// returns what the terminal showed.
func (d *daemon) emberOnTTY(args ...string) (string, error) {
	d.t.Helper()
	ptmx, tty := openPTY(d.t)
	defer ptmx.Close()
	cmd := exec.Command(d.e.bin, args...)
	cmd.Env = itest.ProcessEnv("EMBER_SOCKET=" + d.socket)
	cmd.Stdout, cmd.Stderr = tty, tty
	if err := cmd.Start(); err != nil {
		tty.Close()
		return "", err
	}
	tty.Close() // the child holds it; reads end (EIO) when it exits
	var out bytes.Buffer
	copied := make(chan struct{})
	go func() {
		io.Copy(&out, ptmx)
		close(copied)
	}()
	err := cmd.Wait()
	<-copied
	return out.String(), err
}

// pushPadded pushes a new echo image whose layer carries size random
// bytes, so no namespace of the shared containerd holds it yet and its
// pull really moves them.
func pushPadded(t *testing.T, e *env, size int) string {
	t.Helper()
	pad := make([]byte, size)
	rand.Read(pad)
	img, err := itest.BuildGoImage(t.Context(), itest.ImageOptions{Pkg: itest.EchoPkg, Version: "v1", User: "65534:65534",
		ExtraFiles: map[string]itest.File{"/pad": {Data: pad}}})
	if err != nil {
		t.Fatal(err)
	}
	ref := e.registry.Ref("padded:" + hex.EncodeToString(pad[:4]))
	if err := itest.Push(t.Context(), img, ref); err != nil {
		t.Fatal(err)
	}
	return ref
}

// TestDeployShowsProgress pulls through a registry throttled to 1 MiB/s:
// on a terminal the layers are redrawn in place with the total and rate,
// then the wait for readiness; in a pipe each step is one line; with -o
// json nothing but the JSON is written.
func TestDeployShowsProgress(t *testing.T) {
	e := setup(t)
	d := newDaemon(t, e)
	e.registry.SetThrottle(1 << 20)
	t.Cleanup(func() { e.registry.SetThrottle(0) })

	ref := pushPadded(t, e, 3<<20)
	start := time.Now()
	out, err := d.emberOnTTY("deploy", "tty", "--image", ref)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("deploy on a terminal: %v\n%s", err, out)
	}
	t.Logf("deploy on a terminal took %s:\n%q", took.Round(time.Millisecond), out)
	for _, want := range []string{"Pulling " + ref, "  total ", " MiB / ", "iB/s", "\x1b[", "Pulled " + ref + ": ",
		"Waiting for a ready replica of tty...", "tty ready after ", "Deployed tty: ready.",
		"URL: http://" + d.listen + "/function/tty"} {
		if !strings.Contains(out, want) {
			t.Errorf("terminal output lacks %q:\n%s", want, out)
		}
	}
	// At 1 MiB/s, 3 MiB take 3s: several redraws, each with the total.
	if n := strings.Count(out, "  total "); n < 4 {
		t.Errorf("terminal showed %d progress redraws, want at least 4:\n%s", n, out)
	}

	ref = pushPadded(t, e, 2<<20)
	stdout, stderr, err := d.ember(nil, "deploy", "plain", "--image", ref)
	if err != nil {
		t.Fatalf("deploy in a pipe: %v\n%s%s", err, stdout, stderr)
	}
	t.Logf("deploy in a pipe, stderr:\n%s", stderr)
	if strings.Contains(stderr, "\x1b[") || strings.Count(stderr, "Pulling ") != 1 || !strings.Contains(stderr, "Pulled "+ref) {
		t.Errorf("pipe's stderr: want one Pulling and one Pulled line, no escapes:\n%q", stderr)
	}
	if !strings.HasPrefix(stdout, "Deployed plain: ready.\n") {
		t.Errorf("pipe's stdout = %q, want the result alone", stdout)
	}

	ref = pushPadded(t, e, 1<<20)
	stdout, stderr, err = d.ember(nil, "deploy", "quiet", "--image", ref, "-o", "json")
	if err != nil {
		t.Fatalf("deploy -o json: %v\n%s%s", err, stdout, stderr)
	}
	var res struct{ Name, URL string }
	if err := json.Unmarshal([]byte(stdout), &res); err != nil || stderr != "" {
		t.Errorf("deploy -o json: stdout %q (%v), stderr %q: want JSON alone", stdout, err, stderr)
	}
	if want := "http://" + d.listen + "/function/quiet"; res.URL != want {
		t.Errorf("deploy -o json: url %q, want %q", res.URL, want)
	}
}

// TestListDescribeStatusAndCountsAcrossRestart: ember list shows state,
// invocations and rate, describe each replica's memory, CPU and time to
// ready; counts survive a SIGKILL (flushed every second here) and a
// remove and deploy again; status shows the bridge's host address; the
// URL printed follows the stack's gateway.
func TestListDescribeStatusAndCountsAcrossRestart(t *testing.T) {
	e := setup(t)
	d := newDaemon(t, e, "--count-flush", "1s", "--auth=true")
	d.mustEmber("deploy", "echo", "--image", e.echo)
	for i := range 20 {
		if _, _, err := d.call("GET", "/function/echo", ""); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	list := d.mustEmber("list")
	t.Logf("ember list:\n%s", list)
	if got := listColumn(list, "echo", "STATE"); got != "ready" {
		t.Errorf("STATE = %q, want ready", got)
	}
	if got := listColumn(list, "echo", "INVOCATIONS"); got != "20" {
		t.Errorf("INVOCATIONS = %q, want 20", got)
	}
	if got := listColumn(list, "echo", "RATE"); !strings.HasSuffix(got, "/s") {
		t.Errorf("RATE = %q, want requests per second", got)
	}
	desc := d.mustEmber("describe", "echo")
	t.Logf("ember describe:\n%s", desc)
	for _, want := range []string{"READY AFTER", "MEMORY", "CPU", " MiB ", " 20 (", "/s over the last minute)"} {
		if !strings.Contains(desc, want) {
			t.Errorf("describe lacks %q:\n%s", want, desc)
		}
	}
	status := d.mustEmber("status")
	t.Logf("ember status:\n%s", status)
	for _, want := range []string{"host " + strings.TrimSuffix(d.Subnet, "0/24") + "1 (functions", "Listening:   " + d.listen + " (gateway and API)",
		"Gateway:     http://" + d.listen + "/function/NAME"} {
		if !strings.Contains(status, want) {
			t.Errorf("status lacks %q:\n%s", want, status)
		}
	}

	time.Sleep(1500 * time.Millisecond) // past a flush
	d.kill9()
	d.start()
	fns, err := d.client.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(fns) != 1 || fns[0].InvocationCount != 20 {
		t.Errorf("after SIGKILL and restart: %+v, want echo with 20 invocations", fns)
	}
	faas := faasCLI(t, d)
	fl := faas("list")
	t.Logf("faas-cli list after SIGKILL and restart:\n%s", fl)
	if !slices.ContainsFunc(strings.Split(fl, "\n"), func(l string) bool { return slices.Equal(strings.Fields(l), []string{"echo", "20", "1"}) }) {
		t.Errorf("faas-cli list after SIGKILL and restart, want echo with 20 invocations:\n%s", fl)
	}
	desc = d.mustEmber("describe", "echo")
	t.Logf("ember describe after SIGKILL and restart:\n%s", desc)
	if !strings.Contains(desc, "adopted") {
		t.Errorf("describe after a restart does not say the replica was adopted:\n%s", desc)
	}

	// As faas-cli deploy --replace does: remove, then deploy again.
	d.mustEmber("remove", "echo")
	stack := filepath.Join(t.TempDir(), "stack.yml")
	os.WriteFile(stack, []byte(fmt.Sprintf("version: 1.0\nprovider:\n  name: openfaas\n  gateway: http://gw.example:31112\nfunctions:\n  echo:\n    image: %s\n", e.echo)), 0o644)
	out := d.mustEmber("deploy", "-f", stack)
	if !strings.Contains(out, "URL: http://gw.example:31112/function/echo\n") {
		t.Errorf("deploy -f does not print the stack's gateway:\n%s", out)
	}
	if _, _, err := d.call("GET", "/function/echo", ""); err != nil {
		t.Fatal(err)
	}
	st, err := d.client.Describe(t.Context(), "echo")
	if err != nil {
		t.Fatal(err)
	}
	if st.InvocationCount != 21 {
		t.Errorf("after remove and deploy: %v invocations, want 21", st.InvocationCount)
	}
}
