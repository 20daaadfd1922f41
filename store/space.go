package store

import (
	"errors"
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/emberfaas/ember/function"
)

// minFree is how much room the state dir must have left for the store to
// take a write. Checking before writing makes "full" a clear, early
// refusal: bbolt may otherwise put a small write into pages it already
// owns and succeed, then fail the next one half-way, and the replicas'
// own files (hosts, secrets) would fail later with less helpful errors.
const minFree = 1 << 20

// space checks the file system of a state dir.
type space struct {
	dir string
}

// check returns an error wrapping function.ErrNoSpace when the state dir
// has less than minFree left for unprivileged writers (what root keeps in
// reserve on ext4 is left to the system).
func (s space) check() error {
	var st unix.Statfs_t
	if err := unix.Statfs(s.dir, &st); err != nil {
		return nil // the write itself will say what is wrong
	}
	if free := st.Bavail * uint64(st.Bsize); free < minFree {
		return fmt.Errorf("state dir %s is full (%d KiB free): %w", s.dir, free>>10, function.ErrNoSpace)
	}
	return nil
}

// wrap names the state dir in an error that is the disk being full, so
// the API answers 507 rather than 500.
func (s space) wrap(err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("state dir %s is full: %w: %w", s.dir, function.ErrNoSpace, err)
	}
	return err
}
