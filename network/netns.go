package network

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// createNetNS creates a network namespace and pins it by bind-mounting it on
// a new file at path, so that it lives on with no process inside. It fails
// with fs.ErrExist if path exists, and leaves nothing behind on any failure.
func createNetNS(path string) (err error) {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return fmt.Errorf("create netns: %w", err)
	}
	if err := f.Close(); err != nil {
		return errors.Join(fmt.Errorf("create netns: %w", err), removeNetNS(path))
	}
	// A goroutine of its own, because pin may have to sacrifice its thread.
	errc := make(chan error, 1)
	go func() { errc <- pinNetNS(path) }()
	if err := <-errc; err != nil {
		return errors.Join(fmt.Errorf("create netns: %w", err), removeNetNS(path))
	}
	return nil
}

// pinNetNS moves its thread into a new network namespace, bind-mounts that
// namespace on path and moves the thread back. If moving back fails the
// thread stays locked, so the runtime ends it with the goroutine instead of
// running other goroutines in the wrong namespace.
func pinNetNS(path string) error {
	runtime.LockOSThread()
	tid := unix.Gettid()
	self := fmt.Sprintf("/proc/self/task/%d/ns/net", tid)
	orig, err := os.Open(self)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("current netns: %w", err)
	}
	defer orig.Close()
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("unshare: %w", err)
	}
	var mountErr error
	if err := unix.Mount(self, path, "", unix.MS_BIND, ""); err != nil {
		mountErr = fmt.Errorf("bind mount: %w", err)
	}
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		return errors.Join(mountErr, fmt.Errorf("restore netns: %w", err))
	}
	runtime.UnlockOSThread()
	return mountErr
}

// removeNetNS unmounts and removes the netns file at path. Missing files and
// files that were never mounted are fine.
func removeNetNS(path string) error {
	// Loop in case the same path got mounted more than once.
	for range 8 {
		err := unix.Unmount(path, unix.MNT_DETACH)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			break
		}
		if err != nil {
			return fmt.Errorf("unmount netns: %w", err)
		}
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove netns: %w", err)
	}
	return nil
}

// isNetNS reports whether path is a mounted network namespace, as opposed to
// missing, or a plain file left by a create that did not finish.
func isNetNS(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && st.Type == unix.NSFS_MAGIC
}
