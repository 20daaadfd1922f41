// Package archtest holds no code, only a test that keeps the package graph
// the way DESIGN.md draws it.
package archtest
