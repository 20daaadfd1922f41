package imagebuild

import (
	"archive/tar"
	"io"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// entries lists an image's files as path → mode (with the type bits of
// tar: directories end in "/").
func entries(t *testing.T, img v1.Image) map[string]int64 {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			got[h.Name] = h.Mode
		}
		rc.Close()
	}
	return got
}

func TestBuildImageReproducible(t *testing.T) {
	opts := ImageOptions{
		User:       "1000:1000",
		Entrypoint: []string{"/app/run"},
		ExtraFiles: map[string]File{"/app/run": {Data: []byte("#!/bin/sh\n"), Mode: 0o755}},
	}
	a, err := BuildImage(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	b, err := BuildImage(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	da, _ := a.Digest()
	db, _ := b.Digest()
	if da != db {
		t.Errorf("two builds: %s and %s, want one digest", da, db)
	}
	want := map[string]int64{
		"app/": 0o755, "app/run": 0o755, "etc/": 0o755, "etc/group": 0o644, "etc/passwd": 0o644, "tmp/": 0o1777,
	}
	if diff := cmp.Diff(want, entries(t, a)); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	cfg, err := a.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Config.User != "1000:1000" || !cmp.Equal(cfg.Config.Entrypoint, []string{"/app/run"}) {
		t.Errorf("config: user %q, entrypoint %q", cfg.Config.User, cfg.Config.Entrypoint)
	}
}

// TestExampleArchive builds the example function as `make examples` does
// and reads the archive back as `ember import` would find it.
func TestExampleArchive(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go tool in PATH")
	}
	img, err := BuildGoImage(t.Context(), ImageOptions{Pkg: "./examples/hello", User: NobodyUser})
	if err != nil {
		t.Fatal(err)
	}
	if mode, ok := entries(t, img)["fn"]; !ok || mode != 0o755 {
		t.Errorf("/fn: present %v, mode %o; want an executable", ok, mode)
	}
	const ref = "localhost/hello:v1"
	path := filepath.Join(t.TempDir(), "hello.tar")
	if err := SaveDockerArchive(img, ref, path); err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	back, err := tarball.ImageFromPath(path, &tag)
	if err != nil {
		t.Fatalf("read %s back as %s: %v", path, ref, err)
	}
	// The archive keeps config and layers; its reader makes its own
	// manifest, so compare the config (docker's image ID).
	want, _ := img.ConfigName()
	got, _ := back.ConfigName()
	if got != want {
		t.Errorf("archive holds image %s, want %s", got, want)
	}
	cfg, err := back.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Config.User != NobodyUser || !cmp.Equal(cfg.Config.Entrypoint, []string{FunctionPath}) {
		t.Errorf("config: user %q, entrypoint %q", cfg.Config.User, cfg.Config.Entrypoint)
	}
	if err := SaveOCIArchive(img, ref, filepath.Join(t.TempDir(), "hello-oci.tar")); err != nil {
		t.Fatal(err)
	}
}
