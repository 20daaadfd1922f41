package proxy

import (
	"regexp"
	"testing"
)

// Call IDs look like the version-4 UUIDs OpenFaaS's gateway sends, and
// no two of a process repeat.
func TestCallIDs(t *testing.T) {
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	g := newCallIDs()
	seen := map[string]bool{}
	for range 1000 {
		id := string(g.append(nil))
		if !uuid.MatchString(id) {
			t.Fatalf("call ID %q is not shaped as a version-4 UUID", id)
		}
		if seen[id] {
			t.Fatalf("call ID %q repeated", id)
		}
		seen[id] = true
	}
	if a, b := string(newCallIDs().append(nil)), string(newCallIDs().append(nil)); a[:18] == b[:18] {
		t.Errorf("two processes' call IDs share their prefix: %s, %s", a, b)
	}
}
