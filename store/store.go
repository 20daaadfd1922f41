package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/emberfaas/ember/function"
)

var (
	bucketFunctions = []byte("functions")
	bucketMeta      = []byte("meta")
	// bucketNamespaces holds the namespaces made besides the default,
	// which always exists and is stored only once its labels change.
	bucketNamespaces = []byte("namespaces")
)

// Store is a bbolt-backed store of function specs. It is safe for
// concurrent use.
type Store struct {
	db    *bolt.DB
	space space
}

// Open opens (creating if needed) the store file at path. Only one process
// may hold it: a second daemon on the same state directory fails here
// instead of corrupting the first one's state.
func Open(path string) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("open store %s: locked by another ember daemon", path)
		}
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketFunctions, bucketMeta, bucketNamespaces} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("init store %s: %w", path, err)
	}
	return &Store{db: db, space: space{dir: filepath.Dir(path)}}, nil
}

// Close releases the file.
func (s *Store) Close() error { return s.db.Close() }

// PutFunction creates or replaces a function's spec.
func (s *Store) PutFunction(spec function.Spec) error {
	data, err := json.Marshal(spec)
	if err != nil {
		return fmt.Errorf("encode %s: %w", spec.Name, err)
	}
	if err := s.space.check(); err != nil {
		return err
	}
	return s.space.wrap(s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketFunctions).Put([]byte(spec.Name), data)
	}))
}

// Function returns one spec, or an error wrapping function.ErrNotFound.
func (s *Store) Function(name string) (function.Spec, error) {
	var spec function.Spec
	err := s.db.View(func(tx *bolt.Tx) error {
		data := tx.Bucket(bucketFunctions).Get([]byte(name))
		if data == nil {
			return fmt.Errorf("function %s: %w", name, function.ErrNotFound)
		}
		return json.Unmarshal(data, &spec)
	})
	return spec, err
}

// Functions returns every spec, sorted by name.
func (s *Store) Functions() ([]function.Spec, error) {
	var specs []function.Spec
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketFunctions).ForEach(func(k, v []byte) error {
			var spec function.Spec
			if err := json.Unmarshal(v, &spec); err != nil {
				return fmt.Errorf("decode %s: %w", k, err)
			}
			specs = append(specs, spec)
			return nil
		})
	})
	slices.SortFunc(specs, func(a, b function.Spec) int { return strings.Compare(a.Name, b.Name) })
	return specs, err
}

// DeleteFunction removes a spec; deleting a missing one is ErrNotFound.
// It is not refused on a full disk ahead of time: removing is how room is
// made, and bbolt usually rewrites pages it already owns.
func (s *Store) DeleteFunction(name string) error {
	return s.space.wrap(s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketFunctions)
		if b.Get([]byte(name)) == nil {
			return fmt.Errorf("function %s: %w", name, function.ErrNotFound)
		}
		return b.Delete([]byte(name))
	}))
}

// Meta returns a small daemon-wide value (such as the install's identity),
// empty when unset.
func (s *Store) Meta(key string) (string, error) {
	var v string
	err := s.db.View(func(tx *bolt.Tx) error {
		v = string(tx.Bucket(bucketMeta).Get([]byte(key)))
		return nil
	})
	return v, err
}

// SetMeta stores a daemon-wide value.
func (s *Store) SetMeta(key, value string) error {
	if err := s.space.check(); err != nil {
		return err
	}
	return s.space.wrap(s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put([]byte(key), []byte(value))
	}))
}
