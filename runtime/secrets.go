package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/emberfaas/ember/function"
)

// Secrets reach a replica the way Kubernetes projects a secret volume: one
// directory per replica, bind-mounted read-only as SecretsDir, laid out as
// kubelet's AtomicWriter lays it out:
//
//	..2026_12_01_10_00_00.123456789/NAME   the values, one data dir
//	..data -> ..2026_12_01_10_00_00.123456789
//	NAME   -> ..data/NAME
//
// A rotation writes a new data dir and swaps ..data with a rename, so a
// reader sees either every old value or every new one, never half a file,
// and a file it holds open keeps its content. The directory itself is
// never replaced: the running container's mount keeps pointing at it.
const (
	secretsDataLink = "..data"
	secretsTmpLink  = "..data_tmp"
	// secretsMetaFile sits beside the projection, not in it: the function
	// does not see it.
	secretsMetaFile = "secrets.json"
)

// secretsMeta is what a replica's projection is made from. It is kept on
// disk so that a rotation — also one made by a daemon restarted since the
// replica started — redoes the projection with the replica's own list and
// user.
type secretsMeta struct {
	Function string   `json:"function"`
	Names    []string `json:"names"`
	UID      uint32   `json:"uid"`
	GID      uint32   `json:"gid"`
}

// projectSecrets makes dir hold exactly meta.Names with their current
// values, owned by meta's user and readable by it alone (files 0400 in
// 0700 directories; the mount is read-only besides). With dropMissing, a
// secret that no longer exists disappears from the projection; without,
// it is an error. On an error before the swap nothing changes: the new
// data dir and the temporary link are removed.
func projectSecrets(dir string, meta secretsMeta, src SecretSource, dropMissing bool) (err error) {
	uid, gid := int(meta.UID), int(meta.GID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("secrets dir: %w", err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		return fmt.Errorf("secrets dir: %w", err)
	}
	data, err := os.MkdirTemp(dir, ".."+time.Now().UTC().Format("2006_01_02_15_04_05."))
	if err != nil {
		return fmt.Errorf("secrets data dir: %w", err)
	}
	tmp := filepath.Join(dir, secretsTmpLink)
	swapped := false
	defer func() {
		if err != nil && !swapped {
			err = errors.Join(err, os.RemoveAll(data), removeIfExists(tmp))
		}
	}()
	var present []string
	// A function sees its own namespace's secrets under their bare names.
	ns := function.Spec{Name: meta.Function}.Namespace()
	for _, name := range meta.Names {
		v, err := src.Value(function.Qualify(name, ns))
		if dropMissing && errors.Is(err, function.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("unable to find secret: %s: %w", name, err)
		}
		p := filepath.Join(data, name)
		if err := os.WriteFile(p, v, 0o400); err != nil {
			return fmt.Errorf("write secret %s: %w", name, err)
		}
		if err := os.Chown(p, uid, gid); err != nil {
			return fmt.Errorf("write secret %s: %w", name, err)
		}
		present = append(present, name)
	}
	if err := os.Chown(data, uid, gid); err != nil {
		return fmt.Errorf("secrets data dir: %w", err)
	}
	// A crash between Symlink and Rename leaves the temporary link behind.
	if err := removeIfExists(tmp); err != nil {
		return fmt.Errorf("secrets: %w", err)
	}
	if err := os.Symlink(filepath.Base(data), tmp); err != nil {
		return fmt.Errorf("secrets: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, secretsDataLink)); err != nil {
		return fmt.Errorf("secrets: %w", err)
	}
	swapped = true
	return tidySecrets(dir, filepath.Base(data), present)
}

// tidySecrets runs after the swap: it adds a link for each new name, drops
// the links of names that are gone, and removes every data dir but the
// current one (the previous one, and any a crash left behind).
func tidySecrets(dir, current string, names []string) error {
	var errs []error
	for _, name := range names {
		target := secretsDataLink + "/" + name
		if got, err := os.Readlink(filepath.Join(dir, name)); err == nil && got == target {
			continue
		}
		if err := removeIfExists(filepath.Join(dir, name)); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			errs = append(errs, err)
		}
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, e := range ents {
		n := e.Name()
		switch {
		case n == current || n == secretsDataLink:
		case strings.HasPrefix(n, ".."):
			if err := os.RemoveAll(filepath.Join(dir, n)); err != nil {
				errs = append(errs, err)
			}
		case !slices.Contains(names, n):
			if err := os.Remove(filepath.Join(dir, n)); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("secrets: %w", err)
	}
	return nil
}

func removeIfExists(p string) error {
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

func readSecretsMeta(path string) (secretsMeta, error) {
	var m secretsMeta
	data, err := os.ReadFile(path)
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return m, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

func writeSecretsMeta(path string, m secretsMeta) error {
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return errors.Join(err, removeIfExists(tmp))
	}
	if err := os.Rename(tmp, path); err != nil {
		return errors.Join(err, removeIfExists(tmp))
	}
	return nil
}

// projectReplicaSecrets writes a new replica's projection and its record,
// under secretsMu so that a rotation running meanwhile either sees the
// replica or happened before its values were read.
func (r *Runtime) projectReplicaSecrets(replicaDir string, meta secretsMeta) (string, error) {
	if r.cfg.Secrets == nil {
		return "", errors.New("secrets: no secret store")
	}
	r.secretsMu.Lock()
	defer r.secretsMu.Unlock()
	sdir := filepath.Join(replicaDir, "secrets")
	if err := projectSecrets(sdir, meta, r.cfg.Secrets, false); err != nil {
		return "", err
	}
	if err := writeSecretsMeta(filepath.Join(replicaDir, secretsMetaFile), meta); err != nil {
		return "", fmt.Errorf("secrets: %w", err)
	}
	return sdir, nil
}

// RefreshSecret re-projects a secret's current value, or its absence once
// deleted, into every replica that lists it, running or not, so a
// rotation reaches replicas without restarting them. It reads the
// replicas' records from the state directory, so it also reaches replicas
// a previous daemon started.
func (r *Runtime) RefreshSecret(ctx context.Context, name string) error {
	if r.cfg.Secrets == nil {
		return nil
	}
	r.secretsMu.Lock()
	defer r.secretsMu.Unlock()
	ents, err := os.ReadDir(filesDir(r.cfg.StateDir))
	if err != nil {
		return fmt.Errorf("refresh secret %s: %w", name, err)
	}
	var errs []error
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		dir := filepath.Join(filesDir(r.cfg.StateDir), e.Name())
		meta, err := readSecretsMeta(filepath.Join(dir, secretsMetaFile))
		if errors.Is(err, os.ErrNotExist) {
			// No secrets, or started by an ember that mounted copies.
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ns := function.Spec{Name: meta.Function}.Namespace()
		if !slices.ContainsFunc(meta.Names, func(n string) bool { return function.Qualify(n, ns) == name }) {
			continue
		}
		if err := projectSecrets(filepath.Join(dir, "secrets"), meta, r.cfg.Secrets, true); err != nil {
			errs = append(errs, fmt.Errorf("replica %s: %w", e.Name(), err))
			continue
		}
		r.log.Info("secret projected", "fn", meta.Function, "replica", e.Name(), "secret", name)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("refresh secret %s: %w", name, err)
	}
	return nil
}

// removeReplicaFiles removes a replica's files, projected secrets
// included, under secretsMu so that a rotation cannot recreate part of
// them while they go.
func (r *Runtime) removeReplicaFiles(id string) error {
	r.secretsMu.Lock()
	defer r.secretsMu.Unlock()
	return os.RemoveAll(filepath.Join(filesDir(r.cfg.StateDir), id))
}
