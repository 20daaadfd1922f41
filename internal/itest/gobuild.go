package itest

import (
	"context"

	"github.com/emberfaas/ember/internal/imagebuild"
)

// ModuleRoot returns the directory of this module's go.mod, found with
// `go env GOMOD` from the working directory, which `go test` sets to the
// package under test.
func ModuleRoot(ctx context.Context) (string, error) { return imagebuild.ModuleRoot(ctx) }

// CacheDir is where compiled function binaries are kept between runs:
// $EMBER_ITEST_CACHE, else ember-itest under the user cache directory
// ($XDG_CACHE_HOME or ~/.cache), else under the temp directory.
func CacheDir() string { return imagebuild.CacheDir() }
