// Package bench is `make bench`: it measures what ember's users feel —
// gateway overhead, wake-up from paused and from zero, deploy, autoscaling,
// density at rest and recovery after a crash — on a real containerd, and
// prints one Markdown table (and, if asked, JSON).
//
// It builds on the integration tests' harness (internal/itest): a private
// containerd, a registry on 127.0.0.1 holding the echo test function built
// from source, and ember daemons run as separate processes, each with its
// own containerd namespace, bridge, subnet, state directory, socket and
// port. Everything it starts is torn down at the end, on failure and on
// Ctrl-C too.
//
// Absolute times drift between machines, so every scenario that has a
// natural reference measures it side by side in the same run and reports
// the ratio: gateway against direct, wake against warm, pull against
// present. Short mode (CI) runs each scenario with tiny counts and asserts
// no timings: only that each produced numbers, and that no request failed
// where ember promises none does.
package bench
