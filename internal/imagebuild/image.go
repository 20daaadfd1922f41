package imagebuild

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Bases an image can start from. Neither is pulled: scratch is empty and
// busybox is the host's static /bin/busybox.
const (
	BaseScratch = "scratch"
	BaseBusybox = "busybox"
)

// Paths used by the images this package builds.
const (
	// FunctionPath is where BuildGoImage puts the compiled binary.
	FunctionPath = "/fn"
	// NobodyUser runs a function as nobody, as a hardened image would.
	NobodyUser = "65534:65534"
	// LockPath is the readiness file of the workload contract.
	LockPath = "/tmp/.lock"

	hostBusybox = "/bin/busybox"
	defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// busyboxApplets are linked into busybox images: what the tests' shell
// function and tests that exec into a task use.
var busyboxApplets = []string{
	"[", "ash", "cat", "chmod", "cp", "date", "echo", "env", "false", "grep",
	"head", "hostname", "httpd", "id", "kill", "ln", "ls", "mkdir", "mv", "nc",
	"printf", "ps", "rm", "sed", "sh", "sleep", "tail", "test", "touch", "true",
	"uname", "wget", "whoami",
}

// File is one regular file added to an image.
type File struct {
	Data []byte
	// Mode holds the permission bits; zero means 0644.
	Mode fs.FileMode
}

// ImageOptions describe an image to build. Every image has one layer, owned
// by root, with /tmp (mode 1777, so a non-root function can write its lock)
// and /etc/passwd and /etc/group that know the user.
type ImageOptions struct {
	// Pkg is a main package relative to the module root, such as
	// "./examples/hello".
	// BuildGoImage compiles it to FunctionPath; BuildImage allows none.
	Pkg string
	// Version is linked in as main.version; empty keeps the source's.
	Version string
	// Base is BaseScratch (also when empty) or BaseBusybox.
	Base string
	// User is "UID[:GID]", "root" or "nobody"; empty runs as root.
	User string
	// Env is added to the config; PATH is set unless Env sets it.
	Env []string
	// Entrypoint defaults to FunctionPath when Pkg is set.
	Entrypoint []string
	Cmd        []string
	// WorkingDir defaults to "/".
	WorkingDir string
	Labels     map[string]string
	// ExtraFiles maps absolute paths to files; they win over generated ones.
	ExtraFiles map[string]File
	// DockerMediaTypes builds a Docker schema 2 image instead of an OCI one,
	// as `docker build` without buildkit's OCI option does.
	DockerMediaTypes bool
}

// BuildGoImage compiles opts.Pkg (static, linux, the host's arch) and builds
// an image around it. Binaries are cached; see CacheDir.
func BuildGoImage(ctx context.Context, opts ImageOptions) (v1.Image, error) {
	if opts.Pkg == "" {
		return nil, errors.New("build image: no Go package")
	}
	return BuildImage(ctx, opts)
}

// BuildImage builds an image from opts; with opts.Pkg it compiles the
// package, without it the image holds only the base and opts.ExtraFiles.
// The result depends only on its inputs (fixed times, sorted entries), so
// building twice gives the same digest.
func BuildImage(ctx context.Context, opts ImageOptions) (v1.Image, error) {
	l := newLayer()
	l.dir("/tmp", 0o1777)
	l.dir("/etc", 0o755)

	uid, gid, err := parseUser(opts.User)
	if err != nil {
		return nil, err
	}
	passwd, group := userFiles(uid, gid)
	l.file("/etc/passwd", []byte(passwd), 0o644)
	l.file("/etc/group", []byte(group), 0o644)

	switch opts.Base {
	case "", BaseScratch:
	case BaseBusybox:
		bb, err := os.ReadFile(hostBusybox)
		if err != nil {
			return nil, fmt.Errorf("busybox base: %w", err)
		}
		l.file("/bin/busybox", bb, 0o755)
		for _, a := range busyboxApplets {
			l.symlink("/bin/"+a, "busybox")
		}
	default:
		return nil, fmt.Errorf("build image: unknown base %q", opts.Base)
	}

	entrypoint := opts.Entrypoint
	if opts.Pkg != "" {
		root, err := ModuleRoot(ctx)
		if err != nil {
			return nil, err
		}
		bin, err := goBinary(ctx, root, opts.Pkg, opts.Version)
		if err != nil {
			return nil, err
		}
		b, err := os.ReadFile(bin)
		if err != nil {
			return nil, fmt.Errorf("read binary: %w", err)
		}
		l.file(FunctionPath, b, 0o755)
		if entrypoint == nil {
			entrypoint = []string{FunctionPath}
		}
	}
	for p, f := range opts.ExtraFiles {
		if !path.IsAbs(p) {
			return nil, fmt.Errorf("build image: extra file %q: path not absolute", p)
		}
		mode := f.Mode.Perm()
		if mode == 0 {
			mode = 0o644
		}
		l.file(p, f.Data, mode)
	}

	env := slices.Clone(opts.Env)
	if !slices.ContainsFunc(env, func(e string) bool { return strings.HasPrefix(e, "PATH=") }) {
		env = append([]string{defaultPath}, env...)
	}
	workdir := opts.WorkingDir
	if workdir == "" {
		workdir = "/"
	}
	created := "ember imagebuild: " + opts.Base
	if opts.Pkg != "" {
		created += " + go build " + opts.Pkg
	}
	cfg := &v1.ConfigFile{
		Architecture: runtime.GOARCH,
		OS:           "linux",
		RootFS:       v1.RootFS{Type: "layers"},
		Config: v1.Config{
			Entrypoint:   entrypoint,
			Cmd:          opts.Cmd,
			Env:          env,
			User:         opts.User,
			WorkingDir:   workdir,
			Labels:       opts.Labels,
			ExposedPorts: map[string]struct{}{"8080/tcp": {}},
		},
	}
	return assemble(l, cfg, created, opts.DockerMediaTypes)
}

func parseUser(user string) (uid, gid int, err error) {
	switch user {
	case "", "root":
		return 0, 0, nil
	case "nobody":
		return 65534, 65534, nil
	}
	u, g, hasGroup := strings.Cut(user, ":")
	if uid, err = strconv.Atoi(u); err != nil || uid < 0 {
		return 0, 0, fmt.Errorf("build image: user %q: want UID[:GID], root or nobody", user)
	}
	gid = uid
	if hasGroup {
		if gid, err = strconv.Atoi(g); err != nil || gid < 0 {
			return 0, 0, fmt.Errorf("build image: user %q: want UID[:GID], root or nobody", user)
		}
	}
	return uid, gid, nil
}

// userFiles returns /etc/passwd and /etc/group naming root, nobody and, if
// it is neither, the image's user as "fn", so that tools inside the task
// (and runc's lookup of a named user) resolve it.
func userFiles(uid, gid int) (passwd, group string) {
	passwd = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
	group = "root:x:0:\nnogroup:x:65534:\n"
	if uid != 0 && uid != 65534 {
		passwd += fmt.Sprintf("fn:x:%d:%d:fn:/tmp:/sbin/nologin\n", uid, gid)
	}
	if gid != 0 && gid != 65534 {
		group += fmt.Sprintf("fn:x:%d:\n", gid)
	}
	return passwd, group
}

// assemble makes a one-layer image from l and cfg. The layer is compressed
// once in memory: the images are a few MB and pushing, saving and hashing
// then reuse the same bytes instead of recompressing each time.
func assemble(l *layer, cfg *v1.ConfigFile, createdBy string, docker bool) (v1.Image, error) {
	gz, err := l.gzip()
	if err != nil {
		return nil, fmt.Errorf("build layer: %w", err)
	}
	layerType, manifestType, configType := types.OCILayer, types.OCIManifestSchema1, types.OCIConfigJSON
	if docker {
		layerType, manifestType, configType = types.DockerLayer, types.DockerManifestSchema2, types.DockerConfigJSON
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(gz)), nil
	}, tarball.WithMediaType(layerType))
	if err != nil {
		return nil, fmt.Errorf("build layer: %w", err)
	}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, manifestType), configType)
	// The config goes first: Append then fills in RootFS and History.
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return nil, fmt.Errorf("build image config: %w", err)
	}
	img, err = mutate.Append(img, mutate.Addendum{
		Layer:     layer,
		History:   v1.History{CreatedBy: createdBy},
		MediaType: layerType,
	})
	if err != nil {
		return nil, fmt.Errorf("build image: %w", err)
	}
	return img, nil
}

// layer collects the entries of a root filesystem tar, creating parent
// directories on demand.
type layer struct {
	entries map[string]*tar.Header
	data    map[string][]byte
}

func newLayer() *layer {
	return &layer{entries: make(map[string]*tar.Header), data: make(map[string][]byte)}
}

func (l *layer) dir(p string, mode int64) {
	p = strings.TrimPrefix(path.Clean(p), "/")
	if p == "" || p == "." {
		return
	}
	if h, ok := l.entries[p]; ok && h.Typeflag == tar.TypeDir {
		h.Mode = mode
		return
	}
	l.parents(p)
	l.entries[p] = &tar.Header{Typeflag: tar.TypeDir, Name: p + "/", Mode: mode}
}

func (l *layer) parents(p string) {
	if d := path.Dir(p); d != "." && d != "/" {
		if _, ok := l.entries[d]; !ok {
			l.dir(d, 0o755)
		}
	}
}

func (l *layer) file(p string, b []byte, mode fs.FileMode) {
	p = strings.TrimPrefix(path.Clean(p), "/")
	l.parents(p)
	l.entries[p] = &tar.Header{Typeflag: tar.TypeReg, Name: p, Mode: int64(mode.Perm()), Size: int64(len(b))}
	l.data[p] = b
}

func (l *layer) symlink(p, target string) {
	p = strings.TrimPrefix(path.Clean(p), "/")
	l.parents(p)
	l.entries[p] = &tar.Header{Typeflag: tar.TypeSymlink, Name: p, Linkname: target, Mode: 0o777}
	delete(l.data, p)
}

func (l *layer) gzip() ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(zw)
	// Sorted names put every directory before its contents.
	for _, name := range slices.Sorted(maps.Keys(l.entries)) {
		h := *l.entries[name]
		h.Format = tar.FormatPAX
		// One fixed mtime keeps digests reproducible.
		h.ModTime = time.Unix(0, 0)
		if err := tw.WriteHeader(&h); err != nil {
			return nil, err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(l.data[name]); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
