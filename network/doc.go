// Package network gives each replica its own network namespace on a CNI
// bridge and takes it away again. It owns everything that involves: the
// named netns files, the bridge/host-local/loopback plugin chain, the IP
// allocations host-local keeps on disk, the libcni result cache, and the
// masquerade rules the bridge plugin adds, so that after Detach (or Teardown)
// nothing of an id is left on the host.
//
// All on-disk state lives under Config.StateDir and Config.NetNSDir and all
// host-wide objects carry Config.Name or Config.Bridge, so two daemons with
// different Configs share a host without touching each other's state.
//
// The plugins are driven through libcni, the library go-cni wraps: go-cni
// v1.1.14 has no option for the libcni cache directory and would always write
// to /var/lib/cni, outside the daemon's state directory.
package network
