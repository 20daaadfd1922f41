package api

import (
	"encoding/json"
	"net/http"
	"sync"

	"github.com/emberfaas/ember/api/wire"
)

// deployStream is the answer to a followed deploy. Its headers go out
// with the first event, so a deploy refused before anything happened
// (a bad spec, a missing secret, an image that does not exist) answers
// with its plain status, as an unfollowed one does.
type deployStream struct {
	w http.ResponseWriter

	mu      sync.Mutex // guards below; the pull reports from its own goroutine
	started bool
}

func (s *deployStream) send(ev wire.DeployEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started {
		s.started = true
		s.w.Header().Set("Content-Type", wire.ProgressType)
		s.w.Header().Set("X-Content-Type-Options", "nosniff")
		s.w.WriteHeader(http.StatusOK)
	}
	// A client gone away ends the request's context, which stops the
	// deploy's waits; a failed write has nothing else to tell.
	if err := json.NewEncoder(s.w).Encode(ev); err != nil {
		return
	}
	http.NewResponseController(s.w).Flush()
}

// fail ends the deploy with err: as a plain status while nothing was
// sent, as an error event after.
func (s *deployStream) fail(code int, err error) {
	s.mu.Lock()
	started := s.started
	s.mu.Unlock()
	if !started {
		http.Error(s.w, err.Error(), code)
		return
	}
	s.send(wire.DeployEvent{Stage: wire.StageError, Code: code, Error: err.Error()})
}
