// Package itest is the harness of ember's integration tests and benchmarks:
// a private containerd per test (own root, state, runc root and socket), an
// in-process OCI registry on 127.0.0.1, and images built from Go source in
// this module without Docker (assembled by internal/imagebuild). Nothing here touches the host's own
// containerd, and everything a helper starts has a Stop or Close that
// leaves the host as it was, including tasks a failing test left running.
//
// The functions the tests deploy live in testdata/fn: echo (Go, FROM
// scratch, non-root; EchoResponse decodes its answers) and shell (busybox
// sh and httpd, root). Both honour PORT, so a test can run them on the host
// network without taking port 8080.
//
// Tests that need the kernel-facing parts call RequireHost first: it skips
// on a developer machine without root or containerd, and fails in CI (CI=true
// or EMBER_REQUIRE_INTEGRATION=1) so that integration tests never skip
// silently there. Each test should use its own containerd namespace
// (Namespace) and pass Containerd.RuncRoot to runc; see Containerd.
//
// This package imports containerd's client for the convenience of tests; it
// is test support, exempt from the rule that only runtime imports containerd.
package itest
