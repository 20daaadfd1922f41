// Package ui is ember's web dashboard: static HTML, CSS and JavaScript
// embedded in the binary and served under /ui/. The page is a client of
// the /system/* API like any other, so it needs nothing of ember's Go
// code, and nothing is built or fetched when ember is installed or run.
package ui
