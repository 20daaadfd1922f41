package function

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Timeouts a function sets in its environment, with the names OpenFaaS's
// watchdogs read. The watchdog in the image enforces them on its side
// (read_timeout while reading the request, exec_timeout on the handler,
// write_timeout on the response); the gateway waits as long as the longest
// of exec_timeout and write_timeout before it answers 504, so a function
// that declares a long timeout is not cut short by the gateway's default.
const (
	EnvReadTimeout  = "read_timeout"
	EnvWriteTimeout = "write_timeout"
	EnvExecTimeout  = "exec_timeout"
)

// MaxTimeout bounds any timeout a function may declare: long enough for
// any request a gateway should hold open, short enough that a typo
// ("3600000") does not hold connections for months.
const MaxTimeout = 24 * time.Hour

// ParseTimeout reads a timeout as the watchdogs do: a whole number of
// seconds ("30") or a Go duration ("30s", "1m30s"). Zero means none.
func ParseTimeout(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	if n, err := strconv.Atoi(v); err == nil {
		if n < 0 || time.Duration(n) > MaxTimeout/time.Second {
			return 0, fmt.Errorf("%w: %q is not between 0 and %s", ErrInvalid, v, MaxTimeout)
		}
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%w: %q is not a number of seconds or a duration such as 30s", ErrInvalid, v)
	}
	if d < 0 || d > MaxTimeout {
		return 0, fmt.Errorf("%w: %q is not between 0 and %s", ErrInvalid, v, MaxTimeout)
	}
	return d, nil
}

// UpstreamTimeout is how long the gateway waits for the function to
// answer: the longer of its exec_timeout and write_timeout, or zero (the
// gateway's own --upstream-timeout) when it sets neither.
func (s Spec) UpstreamTimeout() time.Duration {
	var d time.Duration
	for _, k := range []string{EnvExecTimeout, EnvWriteTimeout} {
		if v, ok := s.Env[k]; ok {
			if t, err := ParseTimeout(v); err == nil {
				d = max(d, t)
			}
		}
	}
	return d
}

func (s Spec) validateTimeouts() error {
	for _, k := range []string{EnvReadTimeout, EnvWriteTimeout, EnvExecTimeout} {
		if v, ok := s.Env[k]; ok {
			if _, err := ParseTimeout(v); err != nil {
				return fmt.Errorf("%w: env %s=%q is not a number of seconds or a duration such as 30s, up to %s", ErrInvalid, k, v, MaxTimeout)
			}
		}
	}
	return nil
}
