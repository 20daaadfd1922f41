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
	dir string
}

// OpenSecrets returns the secret store in dir, creating it.
func OpenSecrets(dir string) (*Secrets, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("secrets dir: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("secrets dir: %w", err)
	}
	return &Secrets{dir: dir}, nil
}

func (s *Secrets) path(name string) (string, error) {
	if err := function.ValidateName(name); err != nil {
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
	return writeSecret(p, value)
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
	return writeSecret(p, value)
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

// Names lists the secrets, sorted.
func (s *Secrets) Names() ([]string, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("list secrets: %w", err)
	}
	names := []string{}
	for _, e := range ents {
		if e.Type().IsRegular() && function.ValidateName(e.Name()) == nil {
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

// writeSecret writes atomically, so a reader never sees half a value.
func writeSecret(p string, value []byte) error {
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, value, 0o600); err != nil {
		return fmt.Errorf("write secret: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write secret: %w", err)
	}
	return nil
}
