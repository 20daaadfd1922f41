package ui

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// Prefix is where Handler expects to be mounted.
const Prefix = "/ui/"

// Handler serves the dashboard's files for requests under Prefix.
func Handler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		// The directory is embedded at build time: it is always there.
		panic(err)
	}
	files := http.StripPrefix(Prefix, http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		// The page runs only its own files and talks only to this daemon;
		// another site cannot frame it to trick a click.
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		// Revalidate, so that an upgraded daemon's page is the one shown.
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}
