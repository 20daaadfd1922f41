package proxy

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/emberfaas/ember/function"
)

// ServiceAddrs says where a service runs now.
type ServiceAddrs interface {
	ServiceIP(name string) (netip.Addr, bool)
}

// Ports publishes services' ports on the host: a listener per port that
// copies each connection to the service's current address. A userspace
// forwarder rather than iptables rules: it follows a service that moves,
// reaches it from the host's loopback, and leaves nothing behind in the
// kernel when the daemon dies.
type Ports struct {
	addrs ServiceAddrs
	log   *slog.Logger

	mu        sync.Mutex // guards below
	listeners map[string][]*portListener
	closed    bool
}

type portListener struct {
	port function.Port
	ln   net.Listener
	wg   sync.WaitGroup
}

// NewPorts returns a forwarder with nothing published.
func NewPorts(addrs ServiceAddrs, log *slog.Logger) *Ports {
	return &Ports{addrs: addrs, log: log, listeners: map[string][]*portListener{}}
}

func hostAddr(p function.Port) string {
	ip := p.HostIP
	if ip == "" {
		ip = "127.0.0.1"
	}
	return net.JoinHostPort(ip, strconv.Itoa(p.HostPort))
}

// Check reports whether service name could publish ports: each is free or
// already published by name itself.
func (p *Ports) Check(name string, ports []function.Port) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	mine := map[string]bool{}
	for _, l := range p.listeners[name] {
		mine[hostAddr(l.port)] = true
	}
	for other, ls := range p.listeners {
		if other == name {
			continue
		}
		for _, l := range ls {
			for _, want := range ports {
				if want.HostPort == l.port.HostPort {
					return fmt.Errorf("%w: port %d: already published by service %s", function.ErrInvalid, want.HostPort, other)
				}
			}
		}
	}
	for _, want := range ports {
		if mine[hostAddr(want)] {
			continue
		}
		ln, err := net.Listen("tcp", hostAddr(want))
		if err != nil {
			return fmt.Errorf("%w: port %s is not free: %w", function.ErrInvalid, hostAddr(want), err)
		}
		ln.Close()
	}
	return nil
}

// Publish makes ports the ones name publishes: new ones listen, gone ones
// close, unchanged ones keep their connections.
func (p *Ports) Publish(name string, ports []function.Port) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("ports: closed")
	}
	var keep []*portListener
	for _, l := range p.listeners[name] {
		if slices.Contains(ports, l.port) {
			keep = append(keep, l)
		} else {
			l.ln.Close()
		}
	}
	for _, want := range ports {
		if slices.ContainsFunc(keep, func(l *portListener) bool { return l.port == want }) {
			continue
		}
		ln, err := net.Listen("tcp", hostAddr(want))
		if err != nil {
			p.listeners[name] = keep
			return fmt.Errorf("%w: port %s: %w", function.ErrInvalid, hostAddr(want), err)
		}
		l := &portListener{port: want, ln: ln}
		l.wg.Add(1)
		go p.serve(name, l)
		keep = append(keep, l)
		p.log.Info("port published", "service", name, "addr", hostAddr(want), "port", want.Port)
	}
	if len(keep) == 0 {
		delete(p.listeners, name)
	} else {
		p.listeners[name] = keep
	}
	return nil
}

// Unpublish closes every port of name.
func (p *Ports) Unpublish(name string) {
	p.mu.Lock()
	ls := p.listeners[name]
	delete(p.listeners, name)
	p.mu.Unlock()
	for _, l := range ls {
		l.ln.Close()
		l.wg.Wait()
	}
}

// Close closes every port; connections in progress end with them.
func (p *Ports) Close() {
	p.mu.Lock()
	p.closed = true
	all := p.listeners
	p.listeners = map[string][]*portListener{}
	p.mu.Unlock()
	for _, ls := range all {
		for _, l := range ls {
			l.ln.Close()
			l.wg.Wait()
		}
	}
}

func (p *Ports) serve(name string, l *portListener) {
	defer l.wg.Done()
	var conns sync.WaitGroup
	defer conns.Wait()
	// Closed when the listener is: connections in progress end with it.
	quit := make(chan struct{})
	defer close(quit)
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		conns.Add(1)
		go func() {
			defer conns.Done()
			p.forward(quit, name, l.port.Port, c)
		}()
	}
}

// forward copies one connection to the service and back. The listener's
// closing ends it.
func (p *Ports) forward(quit <-chan struct{}, name string, port int, c net.Conn) {
	defer c.Close()
	ip, ok := p.addrs.ServiceIP(name)
	if !ok {
		return
	}
	up, err := net.DialTimeout("tcp", net.JoinHostPort(ip.String(), strconv.Itoa(port)), 5*time.Second)
	if err != nil {
		return
	}
	defer up.Close()
	finished := make(chan struct{})
	defer close(finished)
	go func() {
		select {
		case <-quit:
			c.Close()
			up.Close()
		case <-finished:
		}
	}()
	done := make(chan struct{})
	go func() {
		io.Copy(up, c)
		if tc, ok := up.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
		close(done)
	}()
	io.Copy(c, up)
	if tc, ok := c.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
	<-done
}
