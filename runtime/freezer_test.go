package runtime

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/containerd/errdefs"
)

// testCgroup makes a cgroup v1 in each of the given controllers holding
// one process, which allocates a little memory and burns a little CPU once
// inside, then sleeps; both go when the test ends. It skips unless run as
// root on a host with cgroup v1 controllers.
func testCgroup(tb testing.TB, controllers ...string) string {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root to make a cgroup")
	}
	if unified() {
		tb.Skip("needs cgroup v1")
	}
	cg := fmt.Sprintf("/ember-test-%d-%s", os.Getpid(), filepath.Base(tb.Name()))
	cmd := exec.Command("sh", "-c", `read go; x=$(head -c 4000000 /dev/zero | tr '\0' a); echo ready; exec sleep 600`)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	var dirs []string
	tb.Cleanup(func() {
		setFrozen(cg, false)
		cmd.Process.Kill()
		cmd.Wait()
		for _, d := range dirs {
			if err := os.Remove(d); err != nil {
				tb.Error(err)
			}
		}
	})
	for _, ctl := range controllers {
		dir := filepath.Join(cgroupRoot, ctl, cg)
		if err := os.Mkdir(dir, 0o755); err != nil {
			tb.Fatal(err)
		}
		dirs = append(dirs, dir)
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0); err != nil {
			tb.Fatal(err)
		}
	}
	stdin.Write([]byte("go\n"))
	if _, err := bufio.NewReader(stdout).ReadString('\n'); err != nil {
		tb.Fatal(err)
	}
	return cg
}

func freezerOnly() ([]cgroup1.Subsystem, error) {
	return []cgroup1.Subsystem{cgroup1.NewFreezer(cgroupRoot)}, nil
}

// The two benchmarks below are why freezing stays hand-written (see
// freezer.go): they time it against containerd's cgroups library.
func BenchmarkThawCompare(b *testing.B) {
	cg := testCgroup(b, "freezer")
	freeze := func(b *testing.B) {
		b.StopTimer()
		if err := setFrozen(cg, true); err != nil {
			b.Fatal(err)
		}
		for {
			if ok, _ := isFrozen(cg); ok {
				break
			}
		}
		b.StartTimer()
	}
	b.Run("file", func(b *testing.B) {
		for b.Loop() {
			freeze(b)
			if err := setFrozen(cg, false); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cgroup1-default-hierarchy", func(b *testing.B) {
		for b.Loop() {
			freeze(b)
			c, err := cgroup1.Load(cgroup1.StaticPath(cg))
			if err != nil {
				b.Fatal(err)
			}
			if err := c.Thaw(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cgroup1-freezer-only", func(b *testing.B) {
		for b.Loop() {
			freeze(b)
			c, err := cgroup1.Load(cgroup1.StaticPath(cg), cgroup1.WithHierarchy(freezerOnly))
			if err != nil {
				b.Fatal(err)
			}
			if err := c.Thaw(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cgroup1-freezer-loaded", func(b *testing.B) {
		c, err := cgroup1.Load(cgroup1.StaticPath(cg), cgroup1.WithHierarchy(freezerOnly))
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			freeze(b)
			if err := c.Thaw(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkFreezeCompare(b *testing.B) {
	cg := testCgroup(b, "freezer")
	r := &Runtime{}
	b.Run("file", func(b *testing.B) {
		for b.Loop() {
			if err := r.Freeze(b.Context(), cg); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			setFrozen(cg, false)
			b.StartTimer()
		}
	})
	b.Run("cgroup1-freezer-only", func(b *testing.B) {
		for b.Loop() {
			c, err := cgroup1.Load(cgroup1.StaticPath(cg), cgroup1.WithHierarchy(freezerOnly))
			if err != nil {
				b.Fatal(err)
			}
			if err := c.Freeze(); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			setFrozen(cg, false)
			b.StartTimer()
		}
	})
}

func TestFreezeThaw(t *testing.T) {
	cg := testCgroup(t, "freezer")
	r := &Runtime{}
	if err := r.Freeze(t.Context(), cg); err != nil {
		t.Fatal(err)
	}
	if frozen, err := isFrozen(cg); err != nil || !frozen {
		t.Fatalf("after Freeze: frozen %v, %v", frozen, err)
	}
	if err := r.Thaw(cg); err != nil {
		t.Fatal(err)
	}
	if frozen, err := isFrozen(cg); err != nil || frozen {
		t.Fatalf("after Thaw: frozen %v, %v", frozen, err)
	}
	if err := r.Thaw("/ember-no-such-cgroup"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Thaw of a missing cgroup = %v, want not found", err)
	}
}
