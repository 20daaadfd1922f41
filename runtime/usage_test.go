package runtime

import (
	"testing"
)

func TestReadCgroup(t *testing.T) {
	cg := testCgroup(t, "cpuacct", "memory")
	cpuNs, mem, ok := readCgroup(cg)
	if !ok {
		t.Fatal("readCgroup: not ok")
	}
	// The process allocated 4 MB in the cgroup; some of it is charged.
	if mem <= 0 {
		t.Errorf("memory %v, want some", mem)
	}
	if cpuNs == 0 {
		t.Error("no CPU time for a process that ran")
	}
	if _, _, ok := readCgroup("/ember-no-such-cgroup"); ok {
		t.Error("readCgroup of a missing cgroup: ok")
	}
}

func BenchmarkReadCgroup(b *testing.B) {
	cg := testCgroup(b, "cpuacct", "memory")
	for b.Loop() {
		if _, _, ok := readCgroup(cg); !ok {
			b.Fatal("not ok")
		}
	}
}
