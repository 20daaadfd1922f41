package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/emberfaas/ember/function"
)

// Secrets keeps secret values as files under the state directory, mode
// 0600 in a 0700 directory: only root reads them, and only ember hands
// them to the functions that list them.
type Secrets struct {
	dir   string
	space space
	// writeFile is os.WriteFile; tests make it fail half-way.
	writeFile func(name string, data []byte, perm os.FileMode) error
}

// OpenSecrets returns the secret store in dir, creating it.
func OpenSecrets(dir string) (*Secrets, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("secrets dir: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("secrets dir: %w", err)
	}
	// A crash between writing and renaming leaves a temporary file: it
	// is no secret, and nothing else removes it.
	tmps, _ := filepath.Glob(filepath.Join(dir, "*"+tmpSuffix))
	for _, p := range tmps {
		if err := os.Remove(p); err != nil {
			return nil, fmt.Errorf("secrets dir: %w", err)
		}
	}
	return &Secrets{dir: dir, space: space{dir: filepath.Dir(dir)}, writeFile: os.WriteFile}, nil
}

const tmpSuffix = ".tmp"

func (s *Secrets) path(name string) (string, error) {
	if err := function.ValidateKey(name); err != nil {
		return "", fmt.Errorf("secret: %w", err)
	}
	return filepath.Join(s.dir, name), nil
}

// Create stores a new secret; an existing one is ErrExists.
func (s *Secrets) Create(name string, value []byte) error {
	p, err := s.path(name)
	if err != nil {
		return err
	}
	if _, err := os.Stat(p); err == nil {
		return fmt.Errorf("secret %s: %w", name, function.ErrExists)
	}
	return s.write(p, value)
}

// Update replaces an existing secret's value.
func (s *Secrets) Update(name string, value []byte) error {
	p, err := s.path(name)
	if err != nil {
		return err
	}
	if _, err := os.Stat(p); err != nil {
		return fmt.Errorf("secret %s: %w", name, function.ErrNotFound)
	}
	return s.write(p, value)
}

// Delete removes a secret.
func (s *Secrets) Delete(name string) error {
	p, err := s.path(name)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("secret %s: %w", name, function.ErrNotFound)
		}
		return fmt.Errorf("secret %s: %w", name, err)
	}
	return nil
}

// Names lists the secrets' keys (see function.Qualify), sorted.
func (s *Secrets) Names() ([]string, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("list secrets: %w", err)
	}
	names := []string{}
	for _, e := range ents {
		if e.Type().IsRegular() && function.ValidateKey(e.Name()) == nil {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	return names, nil
}

// Value returns a secret's value.
func (s *Secrets) Value(name string) ([]byte, error) {
	p, err := s.path(name)
	if err != nil {
		return nil, err
	}
	v, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("secret %s: %w", name, function.ErrNotFound)
	}
	return v, err
}

// Exists reports whether a secret exists.
func (s *Secrets) Exists(name string) bool {
	p, err := s.path(name)
	if err != nil {
		return false
	}
	_, err = os.Stat(p)
	return err == nil
}

// write writes atomically, so a reader never sees half a value. On a
// failure, a full disk above all, the temporary file goes too: the old
// value stays whole and no partial file is left for anyone to read.
func (s *Secrets) write(p string, value []byte) error {
	if err := s.space.check(); err != nil {
		return err
	}
	tmp := p + tmpSuffix
	err := s.writeFile(tmp, value, 0o600)
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		if rerr := os.Remove(tmp); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			err = errors.Join(err, rerr)
		}
		return s.space.wrap(fmt.Errorf("write secret: %w", err))
	}
	return nil
}
