//go:build integration

package installtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emberfaas/ember/api/wire"
	"github.com/emberfaas/ember/internal/itest"
)

// What install.sh installs and where (see its top).
const (
	bin            = "/usr/local/bin/ember"
	unitFile       = "/etc/systemd/system/ember.service"
	stateDir       = "/var/lib/ember"
	daemonLog      = "/var/log/ember.log"
	containerdLog  = "/var/log/ember-containerd.log"
	pidFile        = "/run/ember.pid"
	containerdPID  = "/run/ember-containerd.pid"
	containerdSock = "/run/containerd/containerd.sock"
	bridge         = "ember0"
	gateway        = "http://127.0.0.1:8080"
	example        = "hello"
)

// TestInstall runs install.sh on this machine as a user would: install,
// install again (nothing may change), uninstall (nothing may be left).
func TestInstall(t *testing.T) {
	itest.RequireHost(t)
	systemd := systemdRunning()

	// Run from a snapshot of the checkout: the build then cannot pick up
	// edits made while the test runs, and writes nothing into the checkout.
	src := snapshot(t)
	preinstalled := exists(bin)
	hadState := exists(stateDir)
	var before *installed
	if preinstalled {
		var err error
		if before, err = saveInstalled(); err != nil {
			t.Fatalf("save the ember installed before the test: %v", err)
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			logTails(t)
		}
		// Whatever happened, uninstall; purge the state only if the test
		// created it, and put back the ember that was there before: its
		// own binary and files, not one built from this checkout.
		args := []string{"--uninstall"}
		if !hadState {
			args = append(args, "--purge")
		}
		if out, err := installSh(src, args...); err != nil {
			t.Errorf("cleanup: install.sh %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		if before == nil {
			return
		}
		if err := before.restore(); err != nil {
			t.Errorf("cleanup: putting back the ember found before the test: %v", err)
		}
		if err := before.check(); err != nil {
			t.Errorf("cleanup: the ember found before the test is not back as it was: %v", err)
		}
	})
	if !preinstalled && healthy() {
		t.Fatalf("something not installed by install.sh answers %s/healthz: stop it first", gateway)
	}

	// First run: from nothing to the example answering.
	out := mustInstallSh(t, src)
	if !systemd && !strings.Contains(out, "systemd is not running here") {
		t.Errorf("install.sh did not say that it starts the daemons without systemd:\n%s", out)
	}
	if !strings.Contains(out, "Hello from ember!") || !strings.Contains(out, stateDir+"/basic-auth-password") {
		t.Errorf("install.sh did not show the example's answer and where the password is:\n%s", out)
	}
	checkExample(t)
	checkInstalled(t)
	pid := daemonPID(t)
	ctrdPID := readPID(containerdPID) // 0 when containerd was running already
	replicas := replicaIDs(t)
	inode := inodeOf(t, bin)
	if len(replicas) == 0 {
		t.Fatal("the example has no replica")
	}

	// Second run: nothing changes.
	out = mustInstallSh(t, src)
	if !strings.Contains(out, "deployed already") {
		t.Errorf("second run did not leave the example alone:\n%s", out)
	}
	checkExample(t)
	if got := daemonPID(t); got != pid {
		t.Errorf("daemon pid %d after the second run, want %d (unchanged)", got, pid)
	}
	if got := readPID(containerdPID); got != ctrdPID {
		t.Errorf("containerd started by install.sh: pid %d after the second run, want %d", got, ctrdPID)
	}
	if got := replicaIDs(t); !slices.Equal(got, replicas) {
		t.Errorf("replicas %v after the second run, want %v (unchanged)", got, replicas)
	}
	if got := inodeOf(t, bin); got != inode {
		t.Errorf("%s was replaced by the second run", bin)
	}
	if d := installedDaemons(); len(d) != 1 {
		t.Errorf("%d ember daemons running (pids %v), want 1", len(d), d)
	}
	tasks := shimPIDs()
	if len(tasks) == 0 {
		t.Errorf("no containerd shim for namespace ember on %s", containerdSock)
	}

	// Uninstall: no unit, binary, bridge, rule or process is left.
	out, err := installSh(src, "--uninstall")
	if err != nil {
		t.Fatalf("install.sh --uninstall: %v\n%s", err, out)
	}
	for _, p := range []string{bin, unitFile, "/etc/systemd/system/multi-user.target.wants/ember.service",
		"/sys/class/net/" + bridge, "/run/ember", pidFile, "/etc/sysctl.d/99-ember.conf"} {
		if exists(p) {
			t.Errorf("%s is left after --uninstall", p)
		}
	}
	if !exists(stateDir) {
		t.Errorf("%s was removed by --uninstall without --purge", stateDir)
	}
	if alive(pid) {
		t.Errorf("daemon (pid %d) still runs after --uninstall", pid)
	}
	if d := installedDaemons(); len(d) > 0 {
		t.Errorf("ember daemons still run after --uninstall: %v", d)
	}
	if s := shimPIDs(); len(s) > 0 {
		t.Errorf("shims of ember's tasks still run after --uninstall: %v", s)
	}
	if ctrdPID != 0 && alive(ctrdPID) {
		t.Errorf("containerd that install.sh started (pid %d) still runs after --uninstall", ctrdPID)
	}
	if ctrdPID == 0 && !systemd {
		t.Log("containerd was running before install.sh: --uninstall left it alone, as it should")
	}
	for _, table := range []string{"nat", "filter"} {
		b, _ := exec.Command("iptables", "-w", "-t", table, "-S").CombinedOutput()
		for line := range strings.Lines(string(b)) {
			if strings.Contains(line, `\"ember-`+bridge+`\"`) {
				t.Errorf("iptables %s rule left: %s", table, strings.TrimSpace(line))
			}
		}
	}
	if healthy() {
		t.Errorf("%s/healthz still answers after --uninstall", gateway)
	}
}

// checkExample calls the example through the gateway.
func checkExample(t *testing.T) {
	t.Helper()
	resp, err := http.Get(gateway + "/function/" + example + "/from/the/test?x=1")
	if err != nil {
		t.Fatalf("call the example: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "Hello from ember!") ||
		!strings.Contains(string(body), "/from/the/test?x=1") {
		t.Fatalf("example answered %s: %q", resp.Status, body)
	}
}

// checkInstalled checks what the first run leaves besides the answering
// example: the unit (verified), forwarding, the group and its socket,
// `ember status`, and the daemon's lifecycle log lines.
func checkInstalled(t *testing.T) {
	t.Helper()
	verifyUnit(t, unitFile)
	if b, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); strings.TrimSpace(string(b)) != "1" {
		t.Errorf("IP forwarding is off")
	}
	if !exists("/etc/sysctl.d/99-ember.conf") {
		t.Errorf("no /etc/sysctl.d/99-ember.conf: forwarding is not persistent")
	}
	if err := exec.Command("getent", "group", "ember").Run(); err != nil {
		t.Errorf("group ember: %v", err)
	}
	if fi, err := os.Stat("/run/ember/ember.sock"); err != nil {
		t.Errorf("socket: %v", err)
	} else if fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode %v, want 0660", fi.Mode().Perm())
	}

	var st wire.SystemStatus
	if err := json.Unmarshal(emberCLI(t, "status", "-o", "json"), &st); err != nil {
		t.Fatalf("ember status -o json: %v", err)
	}
	if st.Containerd.Version == "" || st.Containerd.Error != "" || st.Bridge != bridge || st.Subnet != "10.63.0.0/16" ||
		st.StateDir != stateDir || st.Functions.Total < 1 || st.Replicas.ByState["ready"] < 1 {
		t.Errorf("ember status: %+v", st)
	}
	if table := string(emberCLI(t, "status")); !strings.Contains(table, "Replicas:") {
		t.Errorf("ember status:\n%s", table)
	}

	logs := daemonLogs(t)
	for _, event := range []string{"msg=deployed", `msg="replica ready"`} {
		found := false
		for line := range strings.Lines(logs) {
			if strings.Contains(line, event) && strings.Contains(line, "fn="+example) {
				found = true
			}
		}
		if !found {
			t.Errorf("daemon log has no %s line for fn=%s:\n%s", event, example, logs)
		}
	}
}

func systemdRunning() bool { return exists("/run/systemd/system") }

// installSh runs install.sh from dir as root with the test's environment.
func installSh(dir string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "./install.sh", args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// The daemons install.sh starts write to their own logs; should one
	// keep a pipe open anyway, do not wait for it.
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	return out.String(), err
}

func mustInstallSh(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := installSh(dir, args...)
	if err != nil {
		t.Fatalf("install.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("install.sh %s:\n%s", strings.Join(args, " "), out)
	return out
}

// emberCLI runs the installed CLI against the installed daemon.
func emberCLI(t *testing.T, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "EMBER_SOCKET=/run/ember/ember.sock")
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("ember %s: %v\n%s", strings.Join(args, " "), err, ee.Stderr)
		}
		t.Fatalf("ember %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func replicaIDs(t *testing.T) []string {
	t.Helper()
	var fs wire.FunctionStatus
	if err := json.Unmarshal(emberCLI(t, "describe", example, "-o", "json"), &fs); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range fs.Instances {
		ids = append(ids, r.ID)
	}
	slices.Sort(ids)
	return ids
}

func daemonPID(t *testing.T) int {
	t.Helper()
	if systemdRunning() {
		out, err := exec.Command("systemctl", "show", "--property=MainPID", "--value", "ember.service").Output()
		if err != nil {
			t.Fatalf("systemctl show ember: %v", err)
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(string(out)))
		return pid
	}
	pid := readPID(pidFile)
	if pid == 0 {
		t.Fatalf("no pid in %s", pidFile)
	}
	return pid
}

func daemonLogs(t *testing.T) string {
	t.Helper()
	if systemdRunning() {
		out, _ := exec.Command("journalctl", "-u", "ember.service", "--no-pager", "-o", "cat").Output()
		return string(out)
	}
	b, err := os.ReadFile(daemonLog)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func logTails(t *testing.T) {
	for _, p := range []string{daemonLog, containerdLog} {
		if b, err := os.ReadFile(p); err == nil {
			lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
			t.Logf("the end of %s:\n%s", p, strings.Join(lines[max(0, len(lines)-40):], "\n"))
		}
	}
}

func healthy() bool {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(gateway + "/healthz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

func readPID(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

func inodeOf(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// alive reports whether pid runs: it exists and is not a zombie (nothing
// may reap an orphan where PID 1 is not an init).
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z'
}

// procs calls fn with each live process's PID and arguments.
func procs(fn func(pid int, args []string)) {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || !alive(pid) {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || len(b) == 0 {
			continue
		}
		fn(pid, strings.Split(strings.TrimRight(string(b), "\x00"), "\x00"))
	}
}

// installedDaemons lists `ember daemon` processes of the installed binary
// (or of one an upgrade replaced); the other tests run their own copies.
func installedDaemons() []int {
	var pids []int
	procs(func(pid int, args []string) {
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if (exe == bin || exe == bin+" (deleted)") && len(args) > 1 && args[1] == "daemon" {
			pids = append(pids, pid)
		}
	})
	return pids
}

// shimPIDs lists the shims of tasks in namespace ember on the system
// containerd: one per function replica.
func shimPIDs() []int {
	var pids []int
	procs(func(pid int, args []string) {
		if filepath.Base(args[0]) != "containerd-shim-runc-v2" {
			return
		}
		ns, addr := argAfter(args, "-namespace"), argAfter(args, "-address")
		if ns == "ember" && addr == containerdSock {
			pids = append(pids, pid)
		}
	})
	return pids
}

func argAfter(args []string, flag string) string {
	if i := slices.Index(args, flag); i >= 0 && i+1 < len(args) {
		return args[i+1]
	}
	return ""
}

// snapshot copies the module (without .git and build outputs) to a
// temporary directory, modes included, and returns its path.
func snapshot(t *testing.T) string {
	t.Helper()
	root, err := itest.ModuleRoot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // an editor's temporary file, gone meanwhile
		}
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		switch {
		case rel == ".":
			return nil
		case d.IsDir() && (rel == ".git" || rel == "bin" || rel == "dist"):
			return filepath.SkipDir
		case filepath.Dir(rel) == "examples" && strings.HasSuffix(rel, ".tar"):
			return nil
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, info.Mode().Perm())
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case d.Type().IsRegular():
			data, err := os.ReadFile(p)
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if err != nil {
				return err
			}
			return os.WriteFile(target, data, info.Mode().Perm())
		}
		return nil // sockets and the like
	})
	if err != nil {
		t.Fatalf("snapshot of %s: %v", root, err)
	}
	return dst
}
