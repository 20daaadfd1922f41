// Package imagebuild assembles OCI images from Go source without Docker or
// a registry: it compiles a main package of this module as a static linux
// binary, lays it into a one-layer image (FROM scratch, or the host's
// static busybox) with /tmp, /etc/passwd and /etc/group, and writes the
// result as a `docker save` or OCI archive that `ember import` loads.
//
// The integration tests build their functions with it (through
// internal/itest, which re-exports it), and `make examples` builds the
// example functions in examples/ with cmd mkimage below, so that the
// README's quick start works offline.
//
// Images are reproducible: the same inputs give the same digest.
package imagebuild
