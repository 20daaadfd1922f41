package imagebuild

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// SaveDockerArchive writes img tagged ref to path in the format of
// `docker save` (manifest.json with RepoTags), which `ember import` loads.
func SaveDockerArchive(img v1.Image, ref, path string) error {
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return fmt.Errorf("save %s: %w", ref, err)
	}
	if err := tarball.WriteToFile(path, r, img); err != nil {
		return fmt.Errorf("save %s: %w", ref, err)
	}
	return nil
}

// SaveOCIArchive writes img to path as a tar of an OCI image layout whose
// index names it with the org.opencontainers.image.ref.name annotation set
// to ref exactly as given, as `skopeo copy ... oci-archive:PATH:REF` does.
// There is no io.containerd.image.name annotation: an importer has to go by
// ref.name, which may be a full reference or only a tag.
func SaveOCIArchive(img v1.Image, ref, path string) error {
	dir, err := os.MkdirTemp("", "imagebuild-oci-")
	if err != nil {
		return fmt.Errorf("save %s: %w", ref, err)
	}
	defer os.RemoveAll(dir)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("save %s: %w", ref, err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": ref,
	})); err != nil {
		return fmt.Errorf("save %s: %w", ref, err)
	}
	if err := tarDir(dir, path); err != nil {
		return fmt.Errorf("save %s: %w", ref, err)
	}
	return nil
}

// tarDir writes the tree under dir to a tar file at dst, names relative to
// dir, in lexical order.
func tarDir(dir, dst string) (err error) {
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		h, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		h.Name = filepath.ToSlash(rel)
		if d.IsDir() {
			h.Name += "/"
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		src, err := os.Open(p)
		if err != nil {
			return err
		}
		defer src.Close()
		_, err = io.Copy(tw, src)
		return err
	})
	if err != nil {
		return err
	}
	return tw.Close()
}
