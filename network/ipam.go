package network

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// allocationOwners returns the ids that hold an IP in host-local's
// allocation files in dir, possibly repeated. host-local writes one file per
// IP, named after it, whose first line is the container id (then "\r\n" and
// the interface name, or nothing in files from older versions). Its other
// files ("lock", "last_reserved_ip.0") are not addresses and are skipped. A
// missing dir means no allocations yet.
func allocationOwners(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ip allocations: %w", err)
	}
	var ids []string
	for _, e := range entries {
		if _, err := netip.ParseAddr(e.Name()); err != nil || !e.Type().IsRegular() {
			continue
		}
		id, err := allocationOwner(filepath.Join(dir, e.Name()))
		if errors.Is(err, fs.ErrNotExist) {
			continue // released while we read
		}
		if err != nil {
			return nil, fmt.Errorf("ip allocations: %w", err)
		}
		if id != "" {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

func allocationOwner(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	s := bufio.NewScanner(f) // strips "\n"; the "\r" goes below
	if !s.Scan() {
		return "", s.Err()
	}
	return strings.TrimSpace(s.Text()), nil
}
