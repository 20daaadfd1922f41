package itest

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/emberfaas/ember/internal/imagebuild"
)

// Push uploads img as ref ("127.0.0.1:PORT/repo:tag", see Registry.Ref) over
// plain HTTP.
func Push(ctx context.Context, img v1.Image, ref string) error {
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}
	if err := remote.Write(r, img, remote.WithContext(ctx)); err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}
	return nil
}

// SaveDockerArchive writes img tagged ref to path in the format of
// `docker save` (manifest.json with RepoTags), for testing `ember import`.
func SaveDockerArchive(img v1.Image, ref, path string) error {
	return imagebuild.SaveDockerArchive(img, ref, path)
}

// SaveOCIArchive writes img to path as a tar of an OCI image layout whose
// index names it with the org.opencontainers.image.ref.name annotation set
// to ref exactly as given, as `skopeo copy ... oci-archive:PATH:REF` does.
// There is no io.containerd.image.name annotation: an importer has to go by
// ref.name, which may be a full reference or only a tag.
func SaveOCIArchive(img v1.Image, ref, path string) error {
	return imagebuild.SaveOCIArchive(img, ref, path)
}
