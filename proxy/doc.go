// Package proxy is ember's data plane: it serves /function/NAME/..., asks
// the controller for a ready replica (waiting while one wakes), and
// forwards the request to it with the prefix stripped, streaming both ways.
// It never starts or stops anything itself; the controller decides.
package proxy
