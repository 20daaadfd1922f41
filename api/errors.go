package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/emberfaas/ember/function"
)

// writeError maps ember's error kinds to status codes; the message is the
// error's text, which names what was wrong.
func writeError(w http.ResponseWriter, err error) {
	http.Error(w, err.Error(), errorCode(err))
}

// errorCode is the HTTP status that stands for err.
func errorCode(err error) int {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, function.ErrInvalid), errors.Is(err, function.ErrImageNotFound):
		code = http.StatusBadRequest
	case errors.Is(err, function.ErrExists):
		code = http.StatusConflict
	case errors.Is(err, function.ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, function.ErrImage):
		code = http.StatusBadGateway
	case errors.Is(err, function.ErrNoSpace):
		code = http.StatusInsufficientStorage
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		code = http.StatusServiceUnavailable
	}
	return code
}
