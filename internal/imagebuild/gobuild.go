package imagebuild

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
)

// ModuleRoot returns the directory of this module's go.mod, found with
// `go env GOMOD` from the working directory, which `go test` sets to the
// package under test.
func ModuleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("go env GOMOD: working directory is not inside a module")
	}
	return filepath.Dir(gomod), nil
}

// CacheDir is where compiled function binaries are kept between runs:
// $EMBER_ITEST_CACHE, else ember-itest under the user cache directory
// ($XDG_CACHE_HOME or ~/.cache), else under the temp directory.
func CacheDir() string {
	if d := os.Getenv("EMBER_ITEST_CACHE"); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "ember-itest")
	}
	return filepath.Join(os.TempDir(), "ember-itest")
}

// goBinary compiles pkg (relative to the module root) as a static linux
// binary and returns its path.
//
// Each (module, package, version, arch) builds to its own fixed path under
// CacheDir, which is what makes repeated builds cheap: `go build -o` leaves
// an output whose build ID is current alone (about 0.1s), so neither this
// process nor the next one relinks unless the source changed. That needs no
// memo in the process, and stays correct when the source changes, which a
// memo keyed by name would not. An flock serialises the test binaries of
// `go test ./...`, which run side by side and build the same functions.
func goBinary(ctx context.Context, root, pkg, version string) (string, error) {
	key := sha256.Sum256([]byte(strings.Join([]string{root, pkg, version, runtime.GOARCH}, "\x00")))
	dir := filepath.Join(CacheDir(), "bin", hex.EncodeToString(key[:8]))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("binary cache: %w", err)
	}
	unlock, err := lockFile(filepath.Join(dir, "lock"))
	if err != nil {
		return "", err
	}
	defer unlock()

	out := filepath.Join(dir, "fn")
	ldflags := "-s -w"
	if version != "" {
		ldflags += " -X main.version=" + version
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false",
		"-ldflags", ldflags, "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return out, nil
}

func lockFile(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	// Closing the file releases the lock.
	return func() { f.Close() }, nil
}
