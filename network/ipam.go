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

// readAllocations reads host-local's allocation files in dir and returns the
// IP each id holds. host-local writes one file per IP, named after it, whose
// first line is the container id (then "\r\n" and the interface name, or
// nothing in files from older versions). Its other files ("lock",
// "last_reserved_ip.0") are not addresses and are skipped. A missing dir
// means no allocations yet.
func readAllocations(dir string) (map[string]netip.Addr, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]netip.Addr{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ip allocations: %w", err)
	}
	allocs := make(map[string]netip.Addr, len(entries))
	for _, e := range entries {
		ip, err := netip.ParseAddr(e.Name())
		if err != nil || !e.Type().IsRegular() {
			continue
		}
		id, err := allocationOwner(filepath.Join(dir, e.Name()))
		if errors.Is(err, fs.ErrNotExist) {
			continue // released while we read
		}
		if err != nil {
			return nil, fmt.Errorf("ip allocations: %w", err)
		}
		// One IP per id is all this package asks for; should host-local
		// ever hold more, report the lowest so the answer is stable.
		if old, ok := allocs[id]; id != "" && (!ok || ip.Less(old)) {
			allocs[id] = ip
		}
	}
	return allocs, nil
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
