// Package scale is ember's controller. For every function it keeps a
// replica set converging on the desired state: it starts replicas, watches
// their readiness and health, restarts crashed ones with backoff, rolls
// updates, drains replicas before removing them, and adopts running tasks
// after a daemon restart.
//
// The data plane asks it for an endpoint through Acquire, which reads an
// immutable snapshot of the ready replicas: no lock, no containerd call and
// no allocation on the request path. Each function's state is changed by
// one goroutine only (its loop), which the proxy never waits for.
package scale
