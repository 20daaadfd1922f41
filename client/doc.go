// Package client is a typed Go client for ember's API, over the unix socket
// or over HTTP with basic auth. The CLI uses it; so can other programs.
package client
