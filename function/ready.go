package function

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ReadyHTTP is an HTTP readiness check: a replica is ready only when a GET
// of Path answers 2xx, first InitialDelay after it started, then every
// Period while it runs.
type ReadyHTTP struct {
	Path         string
	InitialDelay time.Duration
	Period       time.Duration
}

// ReadyHTTP returns the function's HTTP readiness check; ok is false when
// the annotation com.openfaas.ready.http.path is not set. Invalid values
// (refused by Validate) read as the defaults.
func (s Spec) ReadyHTTP() (_ ReadyHTTP, ok bool) {
	r, ok, err := s.parseReadyHTTP()
	if err != nil {
		r = ReadyHTTP{Path: r.Path, Period: DefaultReadyPeriod}
	}
	return r, ok
}

// parseReadyHTTP reads the readiness annotations. initialDelay takes a Go
// duration ("2s", as OpenFaaS's examples write it) or plain seconds ("2",
// as Kubernetes' initialDelaySeconds); periodSeconds takes whole seconds
// only, as its name says. The delay and period are checked even without a
// path, so that a typo is not silently ignored.
func (s Spec) parseReadyHTTP() (r ReadyHTTP, ok bool, err error) {
	r.Period = DefaultReadyPeriod
	path, ok := s.Annotations[AnnotationReadyPath]
	r.Path = strings.TrimSpace(path)
	if ok && (!strings.HasPrefix(r.Path, "/") || strings.ContainsAny(r.Path, " \t\n\r")) {
		return r, ok, fmt.Errorf("%w: annotation %s=%q is not a path such as /ready", ErrInvalid, AnnotationReadyPath, path)
	}
	if v, set := s.Annotations[AnnotationReadyInitialDelay]; set {
		v = strings.TrimSpace(v)
		d, derr := time.ParseDuration(v)
		if n, nerr := strconv.Atoi(v); nerr == nil {
			d, derr = time.Duration(n)*time.Second, nil
		}
		if derr != nil || d < 0 {
			return r, ok, fmt.Errorf("%w: annotation %s=%q is not a duration such as 2s", ErrInvalid, AnnotationReadyInitialDelay, v)
		}
		r.InitialDelay = d
	}
	if v, set := s.Annotations[AnnotationReadyPeriod]; set {
		n, perr := strconv.Atoi(strings.TrimSpace(v))
		if perr != nil || n < 1 {
			return r, ok, fmt.Errorf("%w: annotation %s=%q is not a whole number of seconds of at least 1", ErrInvalid, AnnotationReadyPeriod, v)
		}
		r.Period = time.Duration(n) * time.Second
	}
	return r, ok, nil
}
