package itest

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/emberfaas/ember/internal/imagebuild"
)

// Image assembly lives in internal/imagebuild, which `make examples` uses
// too; these names keep the tests' spelling.

// Bases an image can start from. Neither is pulled: scratch is empty and
// busybox is the host's static /bin/busybox.
const (
	BaseScratch = imagebuild.BaseScratch
	BaseBusybox = imagebuild.BaseBusybox
)

// Paths used by the images this package builds.
const (
	// FunctionPath is where BuildGoImage puts the compiled binary.
	FunctionPath = imagebuild.FunctionPath
	// EchoPkg is the echo test function, for ImageOptions.Pkg.
	EchoPkg = "./testdata/fn/echo"
	// NobodyUser runs a function as nobody, as a hardened image would.
	NobodyUser = imagebuild.NobodyUser
	// LockPath is the readiness file of the workload contract.
	LockPath = imagebuild.LockPath

	shellRootfs = "testdata/fn/shell/rootfs"
)

// File is one regular file added to an image.
type File = imagebuild.File

// ImageOptions describe an image to build; see imagebuild.ImageOptions.
type ImageOptions = imagebuild.ImageOptions

// BuildGoImage compiles opts.Pkg (static, linux, the host's arch) and builds
// an image around it. Binaries are cached; see CacheDir.
func BuildGoImage(ctx context.Context, opts ImageOptions) (v1.Image, error) {
	return imagebuild.BuildGoImage(ctx, opts)
}

// BuildImage builds an image from opts; see imagebuild.BuildImage.
func BuildImage(ctx context.Context, opts ImageOptions) (v1.Image, error) {
	return imagebuild.BuildImage(ctx, opts)
}

// BuildShellImage builds the shell test function: busybox sh and httpd
// serving testdata/fn/shell/rootfs as root, with index.html ("hello from
// sh") and a CGI at /cgi-bin/echo. Its start.sh writes the lock before
// httpd listens, and honours PORT (default 8080).
func BuildShellImage(ctx context.Context) (v1.Image, error) {
	root, err := ModuleRoot(ctx)
	if err != nil {
		return nil, err
	}
	files, err := readTree(filepath.Join(root, shellRootfs))
	if err != nil {
		return nil, fmt.Errorf("shell image: %w", err)
	}
	return BuildImage(ctx, ImageOptions{
		Base:       BaseBusybox,
		Entrypoint: []string{"/bin/sh", "/app/start.sh"},
		ExtraFiles: files,
	})
}

// readTree reads the files under dir as image paths. Scripts (under
// cgi-bin/ or named *.sh) are made executable here rather than trusting the
// checkout's mode bits, which git keeps only where core.fileMode is on.
func readTree(dir string) (map[string]File, error) {
	files := make(map[string]File)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		name := "/" + filepath.ToSlash(rel)
		mode := fs.FileMode(0o644)
		if strings.Contains(name, "/cgi-bin/") || strings.HasSuffix(name, ".sh") {
			mode = 0o755
		}
		files[name] = File{Data: b, Mode: mode}
		return nil
	})
	return files, err
}
