package function

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
)

// LabelFunctionName is the label OpenFaaS providers put on every function,
// set to its name. ember shows it in the API but never stores it: it is
// derived, and a client that sends back what it read must not change the
// spec.
const LabelFunctionName = "faas_function"

// Normalize returns the spec in the one form that ember stores and
// hashes, so that one function sent by faas-cli ("labels":{}), a stack
// file or ember's CLI (no labels at all) is one spec: empty maps, lists
// and resources become nil, an image without tag or digest gets ":latest"
// (as faas-cli adds it), and the derived faas_function label is dropped.
func (s Spec) Normalize() Spec {
	c := s.Clone()
	c.Image = NormalizeImage(c.Image)
	if c.Kind == KindFunction {
		c.Kind = ""
	}
	if c.Labels != nil {
		delete(c.Labels, LabelFunctionName)
	}
	c.Env, c.Labels, c.Annotations = nilIfEmpty(c.Env), nilIfEmpty(c.Labels), nilIfEmpty(c.Annotations)
	if len(c.Secrets) == 0 {
		c.Secrets = nil
	}
	if len(c.Constraints) == 0 {
		c.Constraints = nil
	}
	if c.Limits != nil && *c.Limits == (Resources{}) {
		c.Limits = nil
	}
	if c.Requests != nil && *c.Requests == (Resources{}) {
		c.Requests = nil
	}
	return c
}

func nilIfEmpty(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}

// NormalizeImage appends ":latest" to a reference without tag or digest,
// as faas-cli does before it sends one, so "echo" and "echo:latest" are
// the same image. A port ("127.0.0.1:5000/echo") is not a tag.
func NormalizeImage(ref string) string {
	if ref == "" || strings.Contains(ref, "@") {
		return ref
	}
	last := ref[strings.LastIndexByte(ref, '/')+1:]
	if strings.Contains(last, ":") {
		return ref
	}
	return ref + ":latest"
}

// Hash identifies what a replica was started from: two specs with equal
// hashes produce identical containers, so a changed hash means the running
// replicas are outdated. Scale and timestamps are deliberately left out.
//
// The hash is taken of the normalised spec, so empty and absent maps hash
// alike. The encoding is unchanged from the first release: a spec that
// was already normal (nil rather than empty maps, a tagged image) keeps
// its hash, and replicas of it keep running across an upgrade.
func (s Spec) Hash() string { return s.Normalize().rawHash() }

// rawHash is the hash of the spec's fields exactly as they are.
func (s Spec) rawHash() string {
	h := sha256.New()
	enc := json.NewEncoder(h)
	// json.Encoder sorts map keys, so the hash is stable.
	_ = enc.Encode([]any{s.Image, s.EnvProcess, s.Env, s.Labels, s.Annotations,
		s.Secrets, s.Limits, s.Requests, s.ReadOnlyRootFilesystem})
	// Only when set, so that specs stored before restarts existed keep
	// their hash and an upgrade restarts nothing.
	if s.IsService() {
		_ = enc.Encode([]any{s.Kind, s.Service})
	}
	if s.RestartGeneration != 0 {
		fmt.Fprintf(h, "restart %d\n", s.RestartGeneration)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// SameContainer reports whether a replica started with hash runs what s
// describes: hash is s's Hash, or a hash that an ember from before
// normalisation gave the same function — with "{}" for an empty map, as a
// spec deployed by faas-cli had until the daemon restarted, or with the
// image as it was written. Adoption uses it so that an upgrade restarts
// nothing.
func (s Spec) SameContainer(hash string) bool {
	if hash == s.Hash() {
		return true
	}
	// Each empty field as nil or as empty, with the stored image and
	// with the normalised one.
	empty := map[string]string{}
	envs, labels, annotations := []map[string]string{s.Env}, []map[string]string{s.Labels}, []map[string]string{s.Annotations}
	if len(s.Env) == 0 {
		envs = []map[string]string{nil, empty}
	}
	if len(s.Labels) == 0 {
		labels = []map[string]string{nil, empty}
	}
	if len(s.Annotations) == 0 {
		annotations = []map[string]string{nil, empty}
	}
	secrets := [][]string{s.Secrets}
	if len(s.Secrets) == 0 {
		secrets = [][]string{nil, {}}
	}
	for _, image := range []string{s.Image, NormalizeImage(s.Image)} {
		for _, env := range envs {
			for _, l := range labels {
				for _, a := range annotations {
					for _, sec := range secrets {
						v := s
						v.Image, v.Env, v.Labels, v.Annotations, v.Secrets = image, env, l, a, sec
						if v.rawHash() == hash {
							return true
						}
					}
				}
			}
		}
	}
	return false
}
