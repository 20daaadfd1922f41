package proxy

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"testing"

	"github.com/emberfaas/ember/function"
)

type fixedAddr netip.Addr

func (a fixedAddr) ServiceIP(string) (netip.Addr, bool) { return netip.Addr(a), true }

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func TestPortsForwardAndRefuse(t *testing.T) {
	// The service: answers "hi" and closes.
	svc, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("no 127.0.0.2: %v", err)
	}
	defer svc.Close()
	go func() {
		for {
			c, err := svc.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, "hi")
			c.Close()
		}
	}()
	p := NewPorts(fixedAddr(netip.MustParseAddr("127.0.0.2")), slog.New(slog.DiscardHandler))
	defer p.Close()
	hp := freePort(t)
	ports := []function.Port{{HostIP: "127.0.0.1", HostPort: hp, Port: svc.Addr().(*net.TCPAddr).Port}}
	if err := p.Check("kv", ports); err != nil {
		t.Fatalf("Check of a free port: %v", err)
	}
	if err := p.Publish("kv", ports); err != nil {
		t.Fatal(err)
	}
	if err := p.Publish("kv", ports); err != nil {
		t.Fatalf("publishing the same ports again: %v", err)
	}
	c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(hp))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(c)
	c.Close()
	if string(b) != "hi" {
		t.Errorf("read %q through the port, want hi", b)
	}
	if err := p.Check("other", ports); !errors.Is(err, function.ErrInvalid) {
		t.Errorf("Check by another service of a published port = %v, want ErrInvalid", err)
	}
	p.Unpublish("kv")
	if _, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(hp)); err == nil {
		t.Errorf("port still open after Unpublish")
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	taken := []function.Port{{HostPort: busy.Addr().(*net.TCPAddr).Port, Port: 1}}
	if err := p.Check("kv", taken); !errors.Is(err, function.ErrInvalid) {
		t.Errorf("Check of a port in use = %v, want ErrInvalid", err)
	}
}
