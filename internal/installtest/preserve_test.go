//go:build integration

package installtest

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Files install.sh writes, replaces or removes (see its top), besides the
// binary and the unit.
const (
	defaultsFile = "/etc/default/ember"
	sysctlFile   = "/etc/sysctl.d/99-ember.conf"
	unitWants    = "/etc/systemd/system/multi-user.target.wants/ember.service"
)

// installed is an ember that was installed before the test: every file
// install.sh replaces or removes, byte for byte, and how its daemons ran,
// so that the test can put it back as it was rather than leave an ember
// built from the checkout under test in its place.
type installed struct {
	files  []savedFile
	binSum [sha256.Size]byte
	group  bool // group ember existed

	// With systemd: whether the unit ran. Whether it starts at boot is
	// the symlink in unitWants, saved with the files.
	active bool
	// Without systemd: the daemons install.sh had started (nil when not
	// running), as they ran.
	daemon, containerd *savedProc
}

type savedFile struct {
	path    string
	present bool
	link    string // a symlink's target; data and mode are a file's
	data    []byte
	mode    fs.FileMode
	mtime   time.Time
}

// savedProc is how a process was started: what install.sh did, read back
// from /proc, so that it runs again with the same binary, arguments,
// environment (the defaults file included), directory and log.
type savedProc struct {
	exe       string
	args, env []string
	dir, log  string
	pidFile   string
}

func saveInstalled() (*installed, error) {
	in := &installed{group: exec.Command("getent", "group", "ember").Run() == nil}
	for _, p := range []string{bin, unitFile, unitWants, defaultsFile, sysctlFile} {
		f := savedFile{path: p}
		fi, err := os.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return nil, err
		case fi.Mode()&fs.ModeSymlink != 0:
			f.present = true
			if f.link, err = os.Readlink(p); err != nil {
				return nil, err
			}
		default:
			f.present, f.mode, f.mtime = true, fi.Mode().Perm(), fi.ModTime()
			if f.data, err = os.ReadFile(p); err != nil {
				return nil, err
			}
		}
		if p == bin {
			in.binSum = sha256.Sum256(f.data)
		}
		in.files = append(in.files, f)
	}
	if systemdRunning() {
		in.active = exec.Command("systemctl", "is-active", "--quiet", "ember.service").Run() == nil
		return in, nil
	}
	var err error
	if pid := readPID(pidFile); alive(pid) {
		if in.daemon, err = saveProc(pid, pidFile, daemonLog); err != nil {
			return nil, err
		}
	}
	if pid := readPID(containerdPID); alive(pid) {
		if in.containerd, err = saveProc(pid, containerdPID, containerdLog); err != nil {
			return nil, err
		}
	}
	return in, nil
}

func saveProc(pid int, pidFile, defaultLog string) (*savedProc, error) {
	dir := fmt.Sprintf("/proc/%d", pid)
	exe, err := os.Readlink(dir + "/exe")
	if err != nil {
		return nil, err
	}
	cmdline, err := os.ReadFile(dir + "/cmdline")
	if err != nil {
		return nil, err
	}
	environ, err := os.ReadFile(dir + "/environ")
	if err != nil {
		return nil, err
	}
	cwd, err := os.Readlink(dir + "/cwd")
	if err != nil {
		return nil, err
	}
	p := &savedProc{exe: strings.TrimSuffix(exe, " (deleted)"), dir: cwd, pidFile: pidFile, log: defaultLog,
		args: splitNUL(cmdline), env: splitNUL(environ)}
	if out, err := os.Readlink(dir + "/fd/1"); err == nil && filepath.IsAbs(out) {
		if fi, err := os.Stat(out); err == nil && fi.Mode().IsRegular() {
			p.log = out
		}
	}
	return p, nil
}

func splitNUL(b []byte) []string {
	b = bytes.TrimRight(b, "\x00")
	if len(b) == 0 {
		return nil
	}
	return strings.Split(string(b), "\x00")
}

// restore puts the saved files back, byte for byte, and starts the
// daemons that ran. It runs after install.sh --uninstall.
func (in *installed) restore() error {
	var errs []error
	for _, f := range in.files {
		if err := f.restore(); err != nil {
			errs = append(errs, err)
		}
	}
	if in.group && exec.Command("getent", "group", "ember").Run() != nil {
		if out, err := exec.Command("groupadd", "--system", "ember").CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("groupadd ember: %w: %s", err, out))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if systemdRunning() {
		run := func(args ...string) error {
			if out, err := exec.Command("systemctl", args...).CombinedOutput(); err != nil {
				return fmt.Errorf("systemctl %s: %w: %s", strings.Join(args, " "), err, out)
			}
			return nil
		}
		if err := run("daemon-reload"); err != nil {
			return err
		}
		if in.active {
			return run("start", "containerd.service", "ember.service")
		}
		return nil
	}
	if in.containerd != nil && !containerdUp() {
		if err := in.containerd.start(); err != nil {
			return err
		}
		if err := waitFor(30*time.Second, containerdUp); err != nil {
			return fmt.Errorf("containerd: %w", err)
		}
	}
	if in.daemon != nil {
		if err := in.daemon.start(); err != nil {
			return err
		}
		if err := waitFor(60*time.Second, healthy); err != nil {
			return fmt.Errorf("the ember daemon put back: %w", err)
		}
	}
	return nil
}

// check compares what is installed now with what was saved.
func (in *installed) check() error {
	var errs []error
	for _, f := range in.files {
		var now savedFile
		fi, err := os.Lstat(f.path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			errs = append(errs, err)
			continue
		case fi.Mode()&fs.ModeSymlink != 0:
			now.present = true
			now.link, _ = os.Readlink(f.path)
		default:
			now.present, now.mode = true, fi.Mode().Perm()
			now.data, _ = os.ReadFile(f.path)
		}
		if now.present != f.present || now.link != f.link || now.mode != f.mode || !bytes.Equal(now.data, f.data) {
			errs = append(errs, fmt.Errorf("%s differs from what was there before the test", f.path))
		}
	}
	if data, err := os.ReadFile(bin); err != nil {
		errs = append(errs, err)
	} else if sum := sha256.Sum256(data); sum != in.binSum {
		errs = append(errs, fmt.Errorf("%s: sha256 %x after the test, %x before", bin, sum, in.binSum))
	}
	if systemdRunning() {
		if got := exec.Command("systemctl", "is-active", "--quiet", "ember.service").Run() == nil; got != in.active {
			errs = append(errs, fmt.Errorf("ember.service active: %v, before the test: %v", got, in.active))
		}
	} else if got := readPID(pidFile); in.daemon != nil && !alive(got) {
		errs = append(errs, fmt.Errorf("the ember daemon that ran before the test does not run"))
	}
	return errors.Join(errs...)
}

func (f savedFile) restore() error {
	if !f.present {
		if err := os.Remove(f.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(f.path), 0o755); err != nil {
		return err
	}
	// A new file renamed into place, as install(1) does: running
	// containers bind-mount the binary, and a busy one cannot be written.
	tmp := filepath.Join(filepath.Dir(f.path), "."+filepath.Base(f.path)+".restore")
	os.Remove(tmp)
	if f.link != "" {
		if err := os.Symlink(f.link, tmp); err != nil {
			return err
		}
	} else {
		if err := os.WriteFile(tmp, f.data, f.mode); err != nil {
			return err
		}
		if err := os.Chmod(tmp, f.mode); err != nil { // not masked by the umask
			return err
		}
		if err := os.Chtimes(tmp, f.mtime, f.mtime); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp, f.path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// start runs the process again in its own session, as install.sh does,
// and records its PID where install.sh looks for it.
func (p *savedProc) start() error {
	log, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := &exec.Cmd{Path: p.exe, Args: p.args, Env: p.env, Dir: p.dir, Stdout: log, Stderr: log,
		SysProcAttr: &syscall.SysProcAttr{Setsid: true}}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.exe, err)
	}
	pid := cmd.Process.Pid
	cmd.Process.Release()
	return os.WriteFile(p.pidFile, []byte(strconv.Itoa(pid)+"\n"), 0o644)
}

func containerdUp() bool {
	return exec.Command("ctr", "--address", containerdSock, "--connect-timeout", "2s", "version").Run() == nil
}

func waitFor(limit time.Duration, ok func() bool) error {
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not up after %s", limit)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return nil
}
