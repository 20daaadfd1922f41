// Package archtest holds no code, only tests that keep the package graph
// the way docs/ARCHITECTURE.md draws it: every package of the module has a
// rule saying which of ours it may import and why, production code, test
// files and integration-tagged files alike, and each third-party engine
// stays behind the one package that owns it.
package archtest
