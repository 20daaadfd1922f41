// Package installtest holds no code, only the tests of install.sh and the
// systemd unit: the unit passes `systemd-analyze verify`, and install.sh,
// run for real on the machine as root (integration tag), ends with the
// example function answering on 127.0.0.1:8080, changes nothing when run
// again, and leaves no unit, binary, bridge, rule or process behind after
// --uninstall.
//
// The install test changes the host the way a user's install would: it
// takes port 8080, the ember0 bridge and the ember namespace of the system
// containerd, none of which the other integration tests use. It restores
// what it found: an ember installed before it is installed again at the
// end, and a state directory it created is purged.
package installtest
