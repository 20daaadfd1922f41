package bench

import (
	"os"
	"testing"
)

// TestProcfs reads the test's own process, which is alive, has memory and
// a command line.
func TestProcfs(t *testing.T) {
	pid := os.Getpid()
	if _, err := procCPU(pid); err != nil {
		t.Errorf("procCPU: %v", err)
	}
	if rss, err := procRSS(pid); err != nil || rss < 1<<20 {
		t.Errorf("procRSS = %d, %v; want at least 1MiB", rss, err)
	}
	if pss, err := procPSS(pid); err != nil || pss <= 0 {
		t.Errorf("procPSS = %d, %v; want more than 0", pss, err)
	}
	if got, err := findProcess(os.Args...); err != nil || got != pid {
		t.Errorf("findProcess(own args) = %d, %v; want %d", got, err, pid)
	}
	if _, err := findProcess("no-such-argument-anywhere", os.Args[0]); err == nil {
		t.Error("findProcess found an argument nobody has")
	}
	if _, err := procRSS(-1); err == nil {
		t.Error("procRSS of pid -1 succeeded")
	}
}
