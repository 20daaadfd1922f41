package api

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"

	"github.com/emberfaas/ember/function"
)

// A full state dir is the server's storage, not the request: 507, with
// the message naming the dir.
func TestWriteErrorNoSpace(t *testing.T) {
	rec := httptest.NewRecorder()
	writeError(rec, fmt.Errorf("store fn: state dir /var/lib/ember is full: %w: %w", function.ErrNoSpace, syscall.ENOSPC))
	if rec.Code != http.StatusInsufficientStorage {
		t.Errorf("status %d, want 507", rec.Code)
	}
	if !strings.Contains(rec.Body.String(), "state dir /var/lib/ember is full") {
		t.Errorf("body %q does not name the state dir", rec.Body)
	}
}
