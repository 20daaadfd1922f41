package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/emberfaas/ember/api/wire"
	"github.com/emberfaas/ember/function"
)

// Logs reads functions' logs.
type Logs interface {
	Logs(ctx context.Context, fn string, q function.LogQuery, out func(function.LogLine) error) error
}

// logs streams NDJSON, one message per line, flushed after each, as
// faas-provider's handler does; follow streams until the client leaves.
func (a *API) logs(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	q := r.URL.Query()
	ref := q.Get("name")
	if ref == "" {
		http.Error(w, "name is required", http.StatusBadRequest)
		return
	}
	name, ok := a.resolve(w, ref, q.Get("namespace"))
	if !ok {
		return
	}
	if _, err := a.fns.Spec(name); err != nil {
		writeError(w, err)
		return
	}
	base, ns := function.SplitRef(function.MetricName(name))
	lq := function.LogQuery{Instance: q.Get("instance")}
	if v := q.Get("tail"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			http.Error(w, "tail "+strconv.Quote(v)+" is not an integer", http.StatusUnprocessableEntity)
			return
		}
		lq.Tail = max(n, 0) // <= 0 means all, as in OpenFaaS
	}
	lq.Follow, _ = strconv.ParseBool(q.Get("follow"))
	if v := q.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			http.Error(w, "since "+strconv.Quote(v)+" is not an RFC 3339 time", http.StatusUnprocessableEntity)
			return
		}
		lq.Since = t
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Connection", "Keep-Alive")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	rc.Flush()
	// A followed stream has no write deadline.
	rc.SetWriteDeadline(time.Time{})
	enc := json.NewEncoder(w)
	err := a.logsrc.Logs(r.Context(), name, lq, func(l function.LogLine) error {
		if err := enc.Encode(wire.LogMessage{Name: base, Namespace: ns, Instance: l.Instance,
			Timestamp: l.Time, Text: l.Text}); err != nil {
			return err
		}
		return rc.Flush()
	})
	if err != nil && r.Context().Err() == nil {
		a.log.Warn("logs", "fn", name, "err", err)
	}
}
