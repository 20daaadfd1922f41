package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/emberfaas/ember/function"
)

// fakeSecrets is a stateful secret store.
type fakeSecrets struct {
	mu   sync.Mutex // guards below
	vals map[string]string
	fail map[string]error
}

func (f *fakeSecrets) Value(name string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail[name]; err != nil {
		return nil, err
	}
	v, ok := f.vals[name]
	if !ok {
		return nil, fmt.Errorf("secret %s: %w", name, function.ErrNotFound)
	}
	return []byte(v), nil
}

func (f *fakeSecrets) set(name, v string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.vals[name] = v
}

func (f *fakeSecrets) del(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.vals, name)
}

func me() secretsMeta {
	return secretsMeta{Function: "fn", UID: uint32(os.Getuid()), GID: uint32(os.Getgid())}
}

// listDir names a projection's entries, with each link's target.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		n := e.Name()
		if target, err := os.Readlink(filepath.Join(dir, n)); err == nil {
			if strings.HasPrefix(target, "..20") {
				target = "..DATA"
			}
			n += " -> " + target
		} else if strings.HasPrefix(n, "..20") {
			n = "..DATA/"
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

func readSecret(t *testing.T, dir, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestProjectSecretsLayout(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "secrets")
	src := &fakeSecrets{vals: map[string]string{"db": "one", "api": "key"}}
	meta := me()
	meta.Names = []string{"db", "api"}
	if err := projectSecrets(dir, meta, src, false); err != nil {
		t.Fatal(err)
	}
	want := []string{"..DATA/", "..data -> ..DATA", "api -> ..data/api", "db -> ..data/db"}
	if got := listDir(t, dir); !slices.Equal(got, want) {
		t.Errorf("layout %q, want %q", got, want)
	}
	if got := readSecret(t, dir, "db"); got != "one" {
		t.Errorf("db = %q", got)
	}
	data, _ := os.Readlink(filepath.Join(dir, secretsDataLink))
	for p, mode := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, data): 0o700, filepath.Join(dir, data, "db"): 0o400} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", p, st.Mode().Perm(), mode)
		}
	}
}

func TestProjectSecretsUpdateAndDelete(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "secrets")
	src := &fakeSecrets{vals: map[string]string{"db": "one", "api": "key"}}
	meta := me()
	meta.Names = []string{"db", "api"}
	if err := projectSecrets(dir, meta, src, false); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Readlink(filepath.Join(dir, secretsDataLink))
	// A reader holding the old file keeps reading the old value.
	held, err := os.Open(filepath.Join(dir, "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()

	src.set("db", "two")
	if err := projectSecrets(dir, meta, src, true); err != nil {
		t.Fatal(err)
	}
	after, _ := os.Readlink(filepath.Join(dir, secretsDataLink))
	if after == before {
		t.Errorf("..data still points at %s", before)
	}
	if got := readSecret(t, dir, "db"); got != "two" {
		t.Errorf("db after update = %q, want two", got)
	}
	if old, _ := io.ReadAll(held); string(old) != "one" {
		t.Errorf("held file reads %q, want the old value", old)
	}
	want := []string{"..DATA/", "..data -> ..DATA", "api -> ..data/api", "db -> ..data/db"}
	if got := listDir(t, dir); !slices.Equal(got, want) {
		t.Errorf("after update %q, want %q (old data dir removed)", got, want)
	}

	// A deleted secret leaves the projection; the others stay.
	src.del("api")
	if err := projectSecrets(dir, meta, src, true); err != nil {
		t.Fatal(err)
	}
	want = []string{"..DATA/", "..data -> ..DATA", "db -> ..data/db"}
	if got := listDir(t, dir); !slices.Equal(got, want) {
		t.Errorf("after delete %q, want %q", got, want)
	}
	// A new replica that lists a missing secret is refused.
	if err := projectSecrets(filepath.Join(t.TempDir(), "s"), meta, src, false); err == nil || !strings.Contains(err.Error(), "unable to find secret: api") {
		t.Errorf("strict projection of a missing secret: %v", err)
	}
}

// assertUnchanged checks that a failed projection left the previous one
// whole and nothing temporary behind.
func assertUnchanged(t *testing.T, dir, wantDB string, wantLayout []string) {
	t.Helper()
	if got := listDir(t, dir); !slices.Equal(got, wantLayout) {
		t.Errorf("after a failed update %q, want %q", got, wantLayout)
	}
	if got := readSecret(t, dir, "db"); got != wantDB {
		t.Errorf("db = %q, want the old %q", got, wantDB)
	}
	filepath.WalkDir(dir, func(p string, _ os.DirEntry, _ error) error {
		if strings.Contains(filepath.Base(p), "tmp") {
			t.Errorf("left behind: %s", p)
		}
		return nil
	})
}

func TestProjectSecretsFailureLeavesOld(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "secrets")
	src := &fakeSecrets{vals: map[string]string{"a": "1", "db": "one"}}
	meta := me()
	meta.Names = []string{"a", "db"}
	if err := projectSecrets(dir, meta, src, false); err != nil {
		t.Fatal(err)
	}
	layout := listDir(t, dir)

	// The second value fails to read, after the first was written.
	src.set("a", "2")
	src.set("db", "two")
	src.fail = map[string]error{"db": errors.New("disk error")}
	if err := projectSecrets(dir, meta, src, true); err == nil {
		t.Fatal("projection with an unreadable secret succeeded")
	}
	assertUnchanged(t, dir, "one", layout)
	src.fail = nil

	// The directory cannot be written (a full or read-only disk). Root
	// writes through mode bits, so only another user can test this.
	if os.Geteuid() != 0 {
		if err := os.Chmod(dir, 0o500); err != nil {
			t.Fatal(err)
		}
		err := projectSecrets(dir, meta, src, true)
		os.Chmod(dir, 0o700)
		if err == nil {
			t.Fatal("projection into a read-only dir succeeded")
		}
		assertUnchanged(t, dir, "one", layout)
	}

	// A link left by a crash between Symlink and Rename does not stop the
	// next update.
	if err := os.Symlink("..gone", filepath.Join(dir, secretsTmpLink)); err != nil {
		t.Fatal(err)
	}
	if err := projectSecrets(dir, meta, src, true); err != nil {
		t.Fatal(err)
	}
	if got := readSecret(t, dir, "db"); got != "two" {
		t.Errorf("db = %q, want two", got)
	}
	if got := listDir(t, dir); !slices.Equal(got, layout) {
		t.Errorf("after recovery %q, want %q", got, layout)
	}
}

func TestRefreshSecret(t *testing.T) {
	state := t.TempDir()
	src := &fakeSecrets{vals: map[string]string{"db": "one", "other": "x"}}
	r := &Runtime{cfg: Config{StateDir: state, Secrets: src}, log: slog.New(slog.DiscardHandler)}
	dirs := map[string][]string{"fn-1": {"db"}, "fn-2": {"db", "other"}, "gn-1": {"other"}}
	for id, names := range dirs {
		meta := me()
		meta.Names = names
		if _, err := r.projectReplicaSecrets(filepath.Join(filesDir(state), id), meta); err != nil {
			t.Fatal(err)
		}
	}
	// A replica started by an older ember, with copies and no record.
	os.MkdirAll(filepath.Join(filesDir(state), "old-1", "secrets"), 0o700)

	src.set("db", "two")
	src.set("other", "y")
	if err := r.RefreshSecret(t.Context(), "db"); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]map[string]string{
		"fn-1": {"db": "two"},
		"fn-2": {"db": "two", "other": "y"},
		"gn-1": {"other": "x"}, // lists no db: untouched
	} {
		for name, v := range want {
			if got := readSecret(t, filepath.Join(filesDir(state), id, "secrets"), name); got != v {
				t.Errorf("%s/%s = %q, want %q", id, name, got, v)
			}
		}
	}

	// Removed replicas leave nothing, and a later rotation does not bring
	// their files back.
	for id := range dirs {
		if err := r.removeReplicaFiles(id); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.RefreshSecret(t.Context(), "db"); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(filesDir(state))
	if len(ents) != 1 || ents[0].Name() != "old-1" {
		t.Errorf("replica files left: %v", ents)
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	meta := me()
	meta.Names = []string{"db"}
	r.projectReplicaSecrets(filepath.Join(filesDir(state), "fn-3"), meta)
	if err := r.RefreshSecret(ctx, "db"); !errors.Is(err, context.Canceled) {
		t.Errorf("RefreshSecret with a cancelled context = %v", err)
	}
}

// A replica of a function outside the default namespace sees its own
// namespace's secrets under their bare names, and a rotation of the
// default's secret of the same name does not reach it.
func TestSecretsOfTheFunctionsNamespace(t *testing.T) {
	state := t.TempDir()
	src := &fakeSecrets{vals: map[string]string{"db": "default", "db.staging": "staging"}}
	r := &Runtime{cfg: Config{StateDir: state, Secrets: src}, log: slog.New(slog.DiscardHandler)}
	for id, fn := range map[string]string{"echo-1": "echo", "echo.staging-1": "echo.staging"} {
		meta := me()
		meta.Function, meta.Names = fn, []string{"db"}
		if _, err := r.projectReplicaSecrets(filepath.Join(filesDir(state), id), meta); err != nil {
			t.Fatal(err)
		}
	}
	src.set("db", "default-2")
	if err := r.RefreshSecret(t.Context(), "db"); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]string{"echo-1": "default-2", "echo.staging-1": "staging"} {
		if got := readSecret(t, filepath.Join(filesDir(state), id, "secrets"), "db"); got != want {
			t.Errorf("%s/db = %q, want %q", id, got, want)
		}
	}
	src.set("db.staging", "staging-2")
	if err := r.RefreshSecret(t.Context(), "db.staging"); err != nil {
		t.Fatal(err)
	}
	if got := readSecret(t, filepath.Join(filesDir(state), "echo.staging-1", "secrets"), "db"); got != "staging-2" {
		t.Errorf("staging's db after its rotation = %q", got)
	}
}
