package store

import (
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/emberfaas/ember/function"
)

// defaultNamespace is the default namespace as it reads before anyone set
// its labels: with the label faasd requires of its namespaces.
func defaultNamespace() function.Namespace {
	return function.Namespace{Name: function.DefaultNamespace, Labels: map[string]string{"openfaas": "1"}}
}

// Namespaces returns every namespace, the default first, the rest sorted.
func (s *Store) Namespaces() ([]function.Namespace, error) {
	out := []function.Namespace{defaultNamespace()}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketNamespaces).ForEach(func(k, v []byte) error {
			var ns function.Namespace
			if err := json.Unmarshal(v, &ns); err != nil {
				return fmt.Errorf("decode namespace %s: %w", k, err)
			}
			if ns.Name == function.DefaultNamespace {
				out[0] = ns
				return nil
			}
			out = append(out, ns)
			return nil
		})
	})
	return out, err
}

// Namespace returns one namespace, or an error wrapping
// function.ErrNotFound.
func (s *Store) Namespace(name string) (function.Namespace, error) {
	var ns function.Namespace
	err := s.db.View(func(tx *bolt.Tx) error {
		data := tx.Bucket(bucketNamespaces).Get([]byte(name))
		if data == nil {
			if name == function.DefaultNamespace {
				ns = defaultNamespace()
				return nil
			}
			return fmt.Errorf("namespace %s: %w", name, function.ErrNotFound)
		}
		return json.Unmarshal(data, &ns)
	})
	return ns, err
}

// CreateNamespace stores a new namespace; an existing one (the default
// included) is ErrExists.
func (s *Store) CreateNamespace(ns function.Namespace) error {
	return s.putNamespace(ns, false)
}

// UpdateNamespace replaces an existing namespace's labels and annotations.
func (s *Store) UpdateNamespace(ns function.Namespace) error {
	return s.putNamespace(ns, true)
}

func (s *Store) putNamespace(ns function.Namespace, update bool) error {
	if err := function.ValidateNamespace(ns.Name); err != nil {
		return err
	}
	data, err := json.Marshal(ns)
	if err != nil {
		return fmt.Errorf("encode namespace %s: %w", ns.Name, err)
	}
	if err := s.space.check(); err != nil {
		return err
	}
	return s.space.wrap(s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketNamespaces)
		exists := b.Get([]byte(ns.Name)) != nil || ns.Name == function.DefaultNamespace
		switch {
		case update && !exists:
			return fmt.Errorf("namespace %s: %w", ns.Name, function.ErrNotFound)
		case !update && exists:
			return fmt.Errorf("namespace %s: %w", ns.Name, function.ErrExists)
		}
		return b.Put([]byte(ns.Name), data)
	}))
}

// DeleteNamespace removes a namespace. The default cannot be removed.
// Whether the namespace is empty is the caller's to check: functions and
// secrets are kept apart from here.
func (s *Store) DeleteNamespace(name string) error {
	if name == function.DefaultNamespace {
		return fmt.Errorf("%w: namespace %s is the default and cannot be deleted", function.ErrInvalid, name)
	}
	return s.space.wrap(s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketNamespaces)
		if b.Get([]byte(name)) == nil {
			return fmt.Errorf("namespace %s: %w", name, function.ErrNotFound)
		}
		return b.Delete([]byte(name))
	}))
}
