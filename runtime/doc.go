// Package runtime is ember's only user of containerd. It pulls and imports
// images, builds each replica's OCI spec, creates, starts, execs into,
// pauses, resumes and removes tasks, captures their logs, and lists what
// exists so the controller can adopt it after a restart.
//
// Every resource a replica owns — container, snapshot, task, network
// attachment, log file, hosts file — is named after the replica ID, so
// Remove and Sweep can find and free all of it.
package runtime
