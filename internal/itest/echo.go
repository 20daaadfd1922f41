package itest

import (
	"fmt"
	"net"
)

// EchoResponse is what the echo function answers for any path that is not
// one of its /_/ controls. It mirrors the reply type in
// testdata/fn/echo/main.go; change both together.
type EchoResponse struct {
	Method string `json:"method"`
	Path   string `json:"path"`
	Query  string `json:"query"`
	Body   string `json:"body"`
	// Headers joins repeated values with ", ".
	Headers  map[string]string `json:"headers"`
	Host     string            `json:"host"`
	Version  string            `json:"version"`
	Hostname string            `json:"hostname"`
	PID      int               `json:"pid"`
	UID      int               `json:"uid"`
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago, for
// a function run on the host network (PORT=...) or a daemon's listener.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
