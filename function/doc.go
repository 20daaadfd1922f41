// Package function holds ember's plain value types: the desired state of a
// function (Spec), the observed state of its replicas, and name validation.
// It imports nothing of ember's own so every other package can share it.
package function
