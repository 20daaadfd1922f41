// Package api is ember's control plane: the OpenFaaS-compatible /system/*
// REST API (so faas-cli works unchanged), ember's own additions to it,
// /healthz and /metrics. The same handler serves TCP, behind HTTP basic
// auth, and the unix socket, guarded by file permissions.
package api
