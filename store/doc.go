// Package store keeps ember's durable desired state — function specs and
// secret metadata — in a bbolt file under the daemon's state directory.
// Observed state (tasks, IPs) is never stored here: it is read back from
// containerd and the CNI allocations on start.
package store
