package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/emberfaas/ember/internal/itest"
)

// env is what every scenario shares: the ember binary, one private
// containerd, and a registry on 127.0.0.1 holding the echo function. Each
// scenario runs its own daemons.
type env struct {
	root    string // module root
	dir     string // everything the run creates, removed at the end
	logDir  string // daemon logs, kept when the run fails
	bin     string // ember, built from this checkout
	log     io.Writer
	ctrd    *itest.Containerd
	ctrdCfg string // containerd's --config, to find its process
	reg     *itest.Registry
	echo    string // the echo function's image reference

	profileDir string // where profiles go (Config.ProfileDir); empty: none

	seq      int               // daemons started, for their subnets
	flags    map[string]string // reportedFlags as the daemons ran them
	cleanups []func() error    // run last first by close
}

// newEnv builds ember, starts containerd and the registry and pushes the
// echo image. On error it has already cleaned up after itself.
func newEnv(ctx context.Context, log io.Writer) (*env, error) {
	if missing := itest.MissingHostRequirements(); len(missing) > 0 {
		return nil, fmt.Errorf("the benchmarks need: %s", strings.Join(missing, "; "))
	}
	e := &env{log: log}
	ok := false
	defer func() {
		if !ok {
			e.close(true)
		}
	}()
	var err error
	if e.root, err = itest.ModuleRoot(ctx); err != nil {
		return nil, err
	}
	if e.dir, err = os.MkdirTemp("", "ember-bench-"); err != nil {
		return nil, err
	}
	e.cleanups = append(e.cleanups, func() error { return os.RemoveAll(e.dir) })
	// The daemon's binary is bind-mounted into containers as the lock
	// probe: any user must be able to reach and run it.
	if err := os.Chmod(e.dir, 0o755); err != nil {
		return nil, err
	}
	if e.logDir, err = os.MkdirTemp("", "ember-bench-logs-"); err != nil {
		return nil, err
	}

	e.bin = filepath.Join(e.dir, "ember")
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", e.bin, "./cmd/ember")
	build.Dir = e.root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build ember: %w\n%s", err, out)
	}

	ctrdDir := filepath.Join(e.dir, "containerd")
	e.ctrdCfg = filepath.Join(ctrdDir, "config.toml")
	if e.ctrd, err = itest.StartContainerd(ctx, ctrdDir, nil); err != nil {
		return nil, err
	}
	e.cleanups = append(e.cleanups, func() error {
		// Keep the log beside the daemons' before the directory goes.
		if b, err := os.ReadFile(e.ctrd.Log); err == nil {
			_ = os.WriteFile(filepath.Join(e.logDir, "containerd.log"), b, 0o644)
		}
		return e.ctrd.Stop()
	})
	if e.reg, err = itest.StartRegistry(); err != nil {
		return nil, err
	}
	e.cleanups = append(e.cleanups, func() error { e.reg.Close(); return nil })

	echo, err := e.buildEcho(ctx, "")
	if err != nil {
		return nil, err
	}
	e.echo = e.reg.Ref("echo:v1")
	if err := itest.Push(ctx, echo, e.echo); err != nil {
		return nil, err
	}
	ok = true
	return e, nil
}

// buildEcho builds the echo function's image, run as nobody. A non-empty
// salt adds a file holding it, so that the image, and its one layer, differ
// from every other: a deploy of it has to pull and unpack for real.
func (e *env) buildEcho(ctx context.Context, salt string) (v1.Image, error) {
	opts := itest.ImageOptions{Pkg: itest.EchoPkg, Version: "v1", User: itest.NobodyUser}
	if salt != "" {
		opts.ExtraFiles = map[string]itest.File{"/etc/bench-salt": {Data: []byte(salt)}}
	}
	return itest.BuildGoImage(ctx, opts)
}

// containerdPID finds the private containerd's process.
func (e *env) containerdPID() (int, error) {
	return findProcess(itest.ContainerdBinary, e.ctrdCfg)
}

// close tears down everything, last started first: daemons (functions,
// tasks, bridges), the registry, containerd (with any shims left), the
// directory. The daemons' logs stay when keepLogs is set.
func (e *env) close(keepLogs bool) error {
	var errs []error
	for i := len(e.cleanups) - 1; i >= 0; i-- {
		errs = append(errs, e.cleanups[i]())
	}
	e.cleanups = nil
	if e.logDir != "" && !keepLogs {
		errs = append(errs, os.RemoveAll(e.logDir))
	}
	return errors.Join(errs...)
}

// recordFlags notes d's reportedFlags for the report; daemons that ran with
// different values show all of them.
func (e *env) recordFlags(d *daemon) {
	if e.flags == nil {
		e.flags = map[string]string{}
	}
	for _, name := range reportedFlags {
		v := d.flag(name)
		switch old, ok := e.flags[name]; {
		case !ok:
			e.flags[name] = v
		case !slices.Contains(strings.Split(old, " / "), v):
			e.flags[name] = old + " / " + v
		}
	}
}
