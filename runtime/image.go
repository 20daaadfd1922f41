package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/images"
	"github.com/containerd/containerd/remotes"
	"github.com/containerd/containerd/remotes/docker"
	"github.com/containerd/platforms"
	"github.com/distribution/reference"
	"github.com/docker/cli/cli/config"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/emberfaas/ember/function"
)

// NormalizeImage turns a user's reference into containerd's canonical form
// ("alpine" → "docker.io/library/alpine:latest").
func NormalizeImage(ref string) (string, error) {
	named, err := reference.ParseDockerRef(ref)
	if err != nil {
		return "", fmt.Errorf("%w: image reference %q: %w", function.ErrInvalid, ref, err)
	}
	return named.String(), nil
}

// EnsureImage makes ref present and unpacked, pulling when needed, and
// returns its canonical name. A present image is used as is unless its tag
// is "latest" (which users expect to move) and it was not imported by hand;
// when a pull fails but the image is present, the local copy is used, so a
// host without its registry keeps working.
func (r *Runtime) EnsureImage(ctx context.Context, ref string) (string, error) {
	ctx = r.ns(ctx)
	name, err := NormalizeImage(ref)
	if err != nil {
		return "", err
	}
	local, lerr := r.client.GetImage(ctx, name)
	if lerr == nil && (!strings.HasSuffix(name, ":latest") || local.Labels()[LabelImported] == "true") {
		return name, r.unpack(ctx, local)
	}
	pctx, cancel := context.WithTimeout(ctx, r.cfg.PullTimeout)
	defer cancel()
	opts := []containerd.RemoteOpt{
		containerd.WithPullUnpack,
		containerd.WithPullSnapshotter(snapshotter),
		containerd.WithResolver(r.resolver()),
		containerd.WithPlatformMatcher(platforms.Default()),
	}
	if report := function.PullProgressFrom(ctx); report != nil {
		w := &pullWatch{image: name, cs: r.client.ContentStore(), report: report}
		opts = append(opts, containerd.WithImageHandler(w.handler()))
		stop, watched := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(watched)
			w.run(pctx, stop)
		}()
		// Stopped before returning: report is not called after the pull.
		defer func() { close(stop); <-watched }()
	}
	img, err := r.client.Pull(pctx, name, opts...)
	if err != nil {
		if lerr == nil {
			r.log.Warn("pull failed, using the local image", "image", name, "err", err)
			return name, r.unpack(ctx, local)
		}
		if errdefs.IsNotFound(err) {
			return "", fmt.Errorf("%w: pull %s: %w", function.ErrImageNotFound, name, err)
		}
		return "", fmt.Errorf("%w: pull %s: %w", function.ErrImage, name, err)
	}
	return img.Name(), nil
}

func (r *Runtime) unpack(ctx context.Context, img containerd.Image) error {
	ok, err := img.IsUnpacked(ctx, snapshotter)
	if err != nil || ok {
		return err
	}
	if err := img.Unpack(ctx, snapshotter); err != nil {
		return fmt.Errorf("%w: unpack %s: %w", function.ErrImage, img.Name(), err)
	}
	return nil
}

// Import loads a `docker save` or OCI archive into ember's namespace,
// unpacks it and returns the image names it held.
func (r *Runtime) Import(ctx context.Context, archive io.Reader) ([]string, error) {
	ctx = r.ns(ctx)
	imgs, err := r.client.Import(ctx, archive,
		containerd.WithImportPlatform(platforms.Default()),
		containerd.WithImageRefTranslator(ociRefName))
	if err != nil {
		return nil, fmt.Errorf("%w: import: %w", function.ErrImage, err)
	}
	var names []string
	for _, im := range imgs {
		if im.Name == "" {
			continue
		}
		im.Labels = map[string]string{LabelImported: "true"}
		if _, err := r.client.ImageService().Update(ctx, im, "labels."+LabelImported); err != nil {
			return nil, fmt.Errorf("%w: label %s: %w", function.ErrImage, im.Name, err)
		}
		img := containerd.NewImageWithPlatform(r.client, im, platforms.Default())
		if err := r.unpack(ctx, img); err != nil {
			return nil, err
		}
		names = append(names, im.Name)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%w: archive holds no named image for %s", function.ErrImage, platforms.DefaultString())
	}
	slices.Sort(names)
	return names, nil
}

// Images lists the images in ember's namespace.
func (r *Runtime) Images(ctx context.Context) ([]string, error) {
	list, err := r.client.ImageService().List(r.ns(ctx))
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	var names []string
	for _, im := range list {
		names = append(names, im.Name)
	}
	return names, nil
}

// RemoveImage deletes an image (its content is garbage-collected).
func (r *Runtime) RemoveImage(ctx context.Context, name string) error {
	err := r.client.ImageService().Delete(r.ns(ctx), name, images.SynchronousDelete())
	if err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("remove image %s: %w", name, err)
	}
	return nil
}

// ociRefName names an image from an OCI archive's ref.name annotation. The
// OCI spec makes that a bare tag, which names nothing on its own, so only
// full references (as skopeo and crane write them) are kept.
func ociRefName(ref string) string {
	if !strings.ContainsAny(ref, "/:@") {
		return ""
	}
	name, err := NormalizeImage(ref)
	if err != nil {
		return ""
	}
	return name
}

func (r *Runtime) resolver() remotes.Resolver {
	return docker.NewResolver(docker.ResolverOptions{Hosts: r.registryHosts()})
}

// registryHosts configures plain HTTP for localhost and the insecure
// registries, and credentials from STATE/config.json (docker's format).
func (r *Runtime) registryHosts() docker.RegistryHosts {
	insecure := func(host string) (bool, error) {
		if slices.Contains(r.cfg.InsecureRegistries, host) {
			return true, nil
		}
		if h, _, ok := strings.Cut(host, ":"); ok && slices.Contains(r.cfg.InsecureRegistries, h) {
			return true, nil
		}
		return docker.MatchLocalhost(host)
	}
	kc := configKeychain{path: filepath.Join(r.cfg.StateDir, "config.json")}
	return docker.ConfigureDefaultRegistries(
		docker.WithPlainHTTP(insecure),
		docker.WithAuthorizer(docker.NewDockerAuthorizer(docker.WithAuthCreds(keychainCreds(kc)))))
}

// configKeychain finds credentials in one docker config.json as
// authn.DefaultKeychain does — "auths", then "credHelpers" and
// "credsStore", which run docker-credential-* helpers found on PATH — but
// at a path of ours: DefaultKeychain takes its file from $DOCKER_CONFIG or
// the home directory, process-wide, and falls back to podman's. The file
// is read on every lookup, so an edit takes effect at the next pull.
type configKeychain struct{ path string }

var _ authn.Keychain = configKeychain{}

func (k configKeychain) Resolve(target authn.Resource) (authn.Authenticator, error) {
	f, err := os.Open(k.path)
	if errors.Is(err, os.ErrNotExist) {
		return authn.Anonymous, nil
	}
	if err != nil {
		return nil, fmt.Errorf("registry credentials: %w", err)
	}
	defer f.Close()
	cf, err := config.LoadFromReader(f)
	if err != nil {
		return nil, fmt.Errorf("registry credentials %s: %w", k.path, err)
	}
	key := target.RegistryStr()
	if key == name.DefaultRegistry {
		key = authn.DefaultAuthKey
	}
	ac, err := cf.GetAuthConfig(key)
	if err != nil {
		return nil, fmt.Errorf("registry credentials for %s: %w", target.RegistryStr(), err)
	}
	if ac.Username == "" && ac.Password == "" && ac.IdentityToken == "" && ac.RegistryToken == "" {
		return authn.Anonymous, nil
	}
	return authn.FromConfig(authn.AuthConfig{Username: ac.Username, Password: ac.Password,
		IdentityToken: ac.IdentityToken, RegistryToken: ac.RegistryToken}), nil
}

// keychainCreds gives containerd's authorizer what a keychain holds for a
// registry host.
func keychainCreds(kc authn.Keychain) func(host string) (string, string, error) {
	return func(host string) (string, string, error) {
		if host == "registry-1.docker.io" {
			// containerd pulls Docker Hub from there; config.json names it
			// after its index.
			host = name.DefaultRegistry
		}
		reg, err := name.NewRegistry(host)
		if err != nil {
			return "", "", fmt.Errorf("registry credentials for %s: %w", host, err)
		}
		a, err := kc.Resolve(reg)
		if err != nil {
			return "", "", err
		}
		ac, err := a.Authorization()
		if err != nil {
			return "", "", fmt.Errorf("registry credentials for %s: %w", host, err)
		}
		if ac.IdentityToken != "" {
			// containerd takes a secret without a user as an OAuth
			// refresh token.
			return "", ac.IdentityToken, nil
		}
		return ac.Username, ac.Password, nil
	}
}
