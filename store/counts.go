package store

import (
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// bucketInvocations holds each function's invocation total, an 8-byte
// big-endian count under its name. It outlives the function, as
// OpenFaaS's counters in Prometheus do, so a function removed and deployed
// again (faas-cli deploy --replace) keeps counting.
var bucketInvocations = []byte("invocations")

// Invocations returns the stored invocation totals by function.
func (s *Store) Invocations() (map[string]uint64, error) {
	out := map[string]uint64{}
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketInvocations)
		if b == nil {
			return nil // never flushed
		}
		return b.ForEach(func(k, v []byte) error {
			if len(v) != 8 {
				return fmt.Errorf("invocations of %s: %d bytes, want 8", k, len(v))
			}
			out[string(k)] = binary.BigEndian.Uint64(v)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read invocations: %w", err)
	}
	return out, nil
}

// PutInvocations stores the given totals, leaving other functions' as
// they are. It is one transaction whatever the number of functions, so
// a periodic flush costs one fsync.
func (s *Store) PutInvocations(totals map[string]uint64) error {
	if len(totals) == 0 {
		return nil
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketInvocations)
		if err != nil {
			return err
		}
		for name, n := range totals {
			if err := b.Put([]byte(name), binary.BigEndian.AppendUint64(nil, n)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return s.space.wrap(fmt.Errorf("store invocations: %w", err))
	}
	return nil
}
