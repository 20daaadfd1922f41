// Command mkimage builds an image from a Go main package of this module and
// writes it as an archive that `ember import` loads, without Docker or a
// registry. `make examples` runs it:
//
//	go run ./internal/imagebuild/mkimage -pkg ./examples/hello -ref localhost/hello:v1 -o examples/hello.tar
//
// The image is FROM scratch, runs the binary as nobody, and is built for the
// host's architecture.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"

	"github.com/emberfaas/ember/internal/imagebuild"
)

func main() {
	pkg := flag.String("pkg", "", "Go main package, relative to the module root (required)")
	ref := flag.String("ref", "", "image reference to tag the archive with, such as localhost/hello:v1 (required)")
	out := flag.String("o", "", "archive to write (required)")
	format := flag.String("format", "docker", "archive format: docker (`docker save`) or oci (an OCI layout)")
	user := flag.String("user", imagebuild.NobodyUser, `user the function runs as: "UID[:GID]", "root" or "nobody"`)
	flag.Parse()
	if *pkg == "" || *ref == "" || *out == "" || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *pkg, *ref, *out, *format, *user); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, pkg, ref, out, format, user string) error {
	save := imagebuild.SaveDockerArchive
	switch format {
	case "docker":
	case "oci":
		save = imagebuild.SaveOCIArchive
	default:
		return fmt.Errorf("-format %q: want docker or oci", format)
	}
	img, err := imagebuild.BuildGoImage(ctx, imagebuild.ImageOptions{Pkg: pkg, User: user})
	if err != nil {
		return err
	}
	// Write beside the target and rename, so an interrupted build never
	// leaves a truncated archive for `ember import` to choke on.
	tmp := out + ".tmp"
	if err := save(img, ref, tmp); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, out); err != nil {
		os.Remove(tmp)
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("%s: %s (%s)\n", out, ref, digest)
	return nil
}
