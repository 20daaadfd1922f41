// Package wire holds the JSON bodies of ember's API: OpenFaaS's shapes,
// field for field, and ember's additions to them. Both ends use them —
// api serves them, client and stack build and read them — so they live in
// a leaf that imports only function and the standard library: a program
// that talks to ember links neither the router nor Prometheus.
package wire
