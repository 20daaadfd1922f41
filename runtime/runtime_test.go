package runtime

import (
	"net/netip"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/containerd/containerd/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/emberfaas/ember/function"
)

func TestEnvList(t *testing.T) {
	got := envList(function.Spec{Env: map[string]string{"B": "2", "A": "1"}, EnvProcess: "cat"})
	want := []string{"A=1", "B=2", "fprocess=cat"}
	if !slices.Equal(got, want) {
		t.Errorf("envList = %v, want %v", got, want)
	}
}

func TestHostsContent(t *testing.T) {
	got := string(hostsContent("fn-1", "fn", netip.MustParseAddr("10.63.0.2"), netip.MustParseAddr("10.63.0.1")))
	for _, want := range []string{"127.0.0.1\tlocalhost", "10.63.0.2\tfn-1 fn", "10.63.0.1\tgateway"} {
		if !strings.Contains(got, want) {
			t.Errorf("hosts lacks %q:\n%s", want, got)
		}
	}
}

func TestImageNames(t *testing.T) {
	for in, want := range map[string]string{
		"alpine":                  "docker.io/library/alpine:latest",
		"127.0.0.1:5000/echo:v1":  "127.0.0.1:5000/echo:v1",
		"ghcr.io/openfaas/fn:0.1": "ghcr.io/openfaas/fn:0.1",
	} {
		got, err := NormalizeImage(in)
		if err != nil || got != want {
			t.Errorf("NormalizeImage(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := NormalizeImage("Upper/Case"); err == nil {
		t.Error("invalid reference accepted")
	}
	if got := ociRefName("v1"); got != "" {
		t.Errorf("a bare OCI tag named an image: %q", got)
	}
	if got := ociRefName("example.org/a/b:1"); got != "example.org/a/b:1" {
		t.Errorf("ociRefName = %q", got)
	}
}

func TestStaticELF(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The test binary is built like ember (CGO_ENABLED=0 under make).
	if got, err := staticELF(self); err != nil {
		t.Fatal(err)
	} else if want := os.Getenv("CGO_ENABLED") == "0"; want && !got {
		t.Errorf("staticELF(%s) = false for a CGO_ENABLED=0 build", self)
	}
	if _, err := staticELF("/nonexistent"); err == nil {
		t.Error("staticELF of a missing file: no error")
	}
	// Debian's sh (dash) is dynamically linked.
	if got, err := staticELF("/bin/sh"); err == nil && got {
		t.Error("staticELF(/bin/sh) = true, want false for a dynamically linked program")
	}
}

func TestIsUnpackKey(t *testing.T) {
	for key, want := range map[string]bool{
		"extract-712345678-Ab3d sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08": true,
		"extract-1a2b3c4d": false, // a replica of a function named "extract"
		"echo-1a2b3c4d":    false,
	} {
		if got := isUnpackKey(key); got != want {
			t.Errorf("isUnpackKey(%q) = %v, want %v", key, got, want)
		}
	}
}

// A volume with nothing in it yet is given to the service's user, so an
// image that runs as nobody can write its data.
func TestOwnVolumes(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chown needs root")
	}
	dir := t.TempDir()
	s := &oci.Spec{Process: &specs.Process{User: specs.User{UID: 65534, GID: 65533}}}
	if err := ownVolumes([]string{dir})(t.Context(), nil, nil, s); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if sys := st.Sys().(*syscall.Stat_t); sys.Uid != 65534 || sys.Gid != 65533 {
		t.Errorf("volume owned by %d:%d, want 65534:65533", sys.Uid, sys.Gid)
	}
}
