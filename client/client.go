package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/emberfaas/ember/api/wire"
)

// Client talks to one ember daemon.
type Client struct {
	base       string
	hc         *http.Client
	user, pass string
	// ns is the function namespace of every call; empty: the daemon's
	// default.
	ns string
}

// New returns a client for addr: a unix socket path, or an http(s) URL.
func New(addr string) *Client {
	if strings.HasPrefix(addr, "http://") || strings.HasPrefix(addr, "https://") {
		return &Client{base: strings.TrimSuffix(addr, "/"), hc: &http.Client{}}
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", addr)
		},
	}
	return &Client{base: "http://ember", hc: &http.Client{Transport: tr}}
}

// WithBasicAuth sets credentials for a TCP daemon.
func (c *Client) WithBasicAuth(user, pass string) *Client {
	c.user, c.pass = user, pass
	return c
}

// WithNamespace makes every call of c about functions and secrets in
// namespace ns.
func (c *Client) WithNamespace(ns string) *Client {
	c.ns = ns
	return c
}

// FunctionNamespace is the namespace set by WithNamespace; empty for the default.
func (c *Client) FunctionNamespace() string { return c.ns }

// ref is how a function is named in a path: NAME.NS outside the default.
func (c *Client) ref(name string) string {
	if c.ns == "" || strings.Contains(name, ".") {
		return name
	}
	return name + "." + c.ns
}

// query is the ?namespace= of a listing.
func (c *Client) query() string {
	if c.ns == "" {
		return ""
	}
	return "?namespace=" + url.QueryEscape(c.ns)
}

// StatusError is a non-2xx answer; Message is the daemon's explanation.
type StatusError struct {
	Code    int
	Message string
}

func (e *StatusError) Error() string {
	if e.Message == "" {
		return http.StatusText(e.Code)
	}
	return e.Message
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if r, ok := in.(io.Reader); ok {
		body = r
	} else if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(data)
	}
	contentType := ""
	if _, isReader := in.(io.Reader); in != nil && !isReader {
		contentType = "application/json"
	}
	resp, err := c.send(ctx, method, path, contentType, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return fmt.Errorf("decode %s %s: %w", method, path, err)
		}
	}
	return nil
}

// send makes one API request and turns a non-2xx answer into a
// StatusError; the caller closes the body of a successful response.
func (c *Client) send(ctx context.Context, method, path, contentType string, body io.Reader) (*http.Response, error) {
	return c.sendAccept(ctx, method, path, contentType, "", body)
}

// sendAccept is send with an Accept header, when accept is set.
func (c *Client) sendAccept(ctx context.Context, method, path, contentType, accept string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	if c.pass != "" {
		req.SetBasicAuth(c.user, c.pass)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("ember daemon: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return nil, &StatusError{Code: resp.StatusCode, Message: strings.TrimSpace(string(msg))}
	}
	return resp, nil
}

// Deploy creates or updates a function. With wait > 0 it returns once a
// replica of the new spec is ready, or with the reason it is not.
func (c *Client) Deploy(ctx context.Context, d wire.FunctionDeployment, wait time.Duration) error {
	path := "/system/functions"
	if wait > 0 {
		path += "?wait=" + url.QueryEscape(wait.String())
	}
	// As faas-cli's -n overrides a stack's namespace:.
	if c.ns != "" {
		d.Namespace = c.ns
	}
	return c.do(ctx, http.MethodPost, path, d, nil)
}

// DeployFollow deploys as Deploy does and calls event with each step the
// daemon reports: the image pull's progress, then the deploy and the
// wait for a ready replica. A failure after the first event comes back as
// the StatusError it would have been. A daemon that does not report steps
// answers as to Deploy, and event is not called.
func (c *Client) DeployFollow(ctx context.Context, d wire.FunctionDeployment, wait time.Duration, event func(wire.DeployEvent)) error {
	path := "/system/functions"
	if wait > 0 {
		path += "?wait=" + url.QueryEscape(wait.String())
	}
	data, err := json.Marshal(d)
	if err != nil {
		return err
	}
	resp, err := c.sendAccept(ctx, http.MethodPost, path, "application/json", wire.ProgressType, bytes.NewReader(data))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), wire.ProgressType) {
		return nil
	}
	dec := json.NewDecoder(resp.Body)
	for {
		var ev wire.DeployEvent
		if err := dec.Decode(&ev); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF // ended without saying how
			}
			return fmt.Errorf("deploy %s: %w", d.Service, err)
		}
		if ev.Stage == wire.StageError {
			return &StatusError{Code: ev.Code, Message: ev.Error}
		}
		event(ev)
		if ev.Stage == wire.StageReady || (ev.Stage == wire.StageDeployed && wait == 0) {
			return nil
		}
	}
}

// List returns every function.
func (c *Client) List(ctx context.Context) ([]wire.FunctionStatus, error) {
	var out []wire.FunctionStatus
	err := c.do(ctx, http.MethodGet, "/system/functions"+c.query(), nil, &out)
	return out, err
}

// Describe returns one function with its replicas.
func (c *Client) Describe(ctx context.Context, name string) (wire.FunctionStatus, error) {
	var out wire.FunctionStatus
	err := c.do(ctx, http.MethodGet, "/system/function/"+url.PathEscape(c.ref(name)), nil, &out)
	return out, err
}

// Remove deletes a function; it returns once its replicas are gone.
func (c *Client) Remove(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/system/functions", wire.DeleteFunctionRequest{FunctionName: name, Namespace: c.ns}, nil)
}

// Scale sets a function's desired replicas.
func (c *Client) Scale(ctx context.Context, name string, replicas uint64) error {
	return c.do(ctx, http.MethodPost, "/system/scale-function/"+url.PathEscape(c.ref(name)),
		wire.ScaleServiceRequest{ServiceName: name, Replicas: replicas}, nil)
}

// SetBounds sets a function's min and max replicas (nil leaves one as it
// is) and, when replicas is not nil, the replica count too.
func (c *Client) SetBounds(ctx context.Context, name string, replicas, lo, hi *uint64) error {
	body := map[string]any{"serviceName": name}
	if replicas != nil {
		body["replicas"] = *replicas
	}
	if lo != nil {
		body["min"] = *lo
	}
	if hi != nil {
		body["max"] = *hi
	}
	return c.do(ctx, http.MethodPost, "/system/scale-function/"+url.PathEscape(c.ref(name)), body, nil)
}

// Restart replaces a function's replicas in a rolling update. With
// wait > 0 it returns once a restarted replica is ready, or with the
// reason it is not.
func (c *Client) Restart(ctx context.Context, name string, wait time.Duration) error {
	path := "/system/restart/" + url.PathEscape(c.ref(name))
	if wait > 0 {
		path += "?wait=" + url.QueryEscape(wait.String())
	}
	return c.do(ctx, http.MethodPost, path, nil, nil)
}

// Info returns the daemon's version information.
func (c *Client) Info(ctx context.Context) (wire.GatewayInfo, error) {
	var out wire.GatewayInfo
	err := c.do(ctx, http.MethodGet, "/system/info", nil, &out)
	return out, err
}

// Import loads an image archive into the daemon and returns its images.
func (c *Client) Import(ctx context.Context, archive io.Reader) ([]string, error) {
	var out wire.ImportResult
	err := c.do(ctx, http.MethodPost, "/system/images", archive, &out)
	return out.Images, err
}

// Invoke calls a function. path is the path below /function/NAME (it may
// carry a query). The caller closes the response body.
func (c *Client) Invoke(ctx context.Context, name, method, path string, header http.Header, body io.Reader) (*http.Response, error) {
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	return c.call(ctx, method, "/function/", name, path, header, body)
}

// InvokeAsync queues a call to a function at path with POST
// (/async-function/NAME/PATH); the daemon answers 202 with X-Call-Id once
// the call is stored. The caller closes the response body.
func (c *Client) InvokeAsync(ctx context.Context, name, path string, header http.Header, body io.Reader) (*http.Response, error) {
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	if path == "/" {
		path = ""
	}
	return c.call(ctx, http.MethodPost, "/async-function/", name, path, header, body)
}

// call sends a request to the function name (in the client's namespace)
// under prefix, with the caller's headers, and leaves the answer to it.
func (c *Client) call(ctx context.Context, method, prefix, name, path string, header http.Header, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+prefix+url.PathEscape(c.ref(name))+path, body)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("ember daemon: %w", err)
	}
	return resp, nil
}

// Queue reports the async calls per function.
func (c *Client) Queue(ctx context.Context) ([]wire.AsyncQueue, error) {
	var out []wire.AsyncQueue
	err := c.do(ctx, http.MethodGet, "/system/queue", nil, &out)
	return out, err
}

// CreateSecret stores a new secret; an existing one is a 409 StatusError.
func (c *Client) CreateSecret(ctx context.Context, name string, value []byte) error {
	return c.do(ctx, http.MethodPost, "/system/secrets", wire.Secret{Name: name, Namespace: c.ns, RawValue: value}, nil)
}

// UpdateSecret replaces a secret's value.
func (c *Client) UpdateSecret(ctx context.Context, name string, value []byte) error {
	return c.do(ctx, http.MethodPut, "/system/secrets", wire.Secret{Name: name, Namespace: c.ns, RawValue: value}, nil)
}

// DeleteSecret removes a secret.
func (c *Client) DeleteSecret(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/system/secrets", wire.Secret{Name: name, Namespace: c.ns}, nil)
}

// Secrets lists secret names.
func (c *Client) Secrets(ctx context.Context) ([]wire.Secret, error) {
	var out []wire.Secret
	err := c.do(ctx, http.MethodGet, "/system/secrets"+c.query(), nil, &out)
	return out, err
}

// LogOptions select log lines.
type LogOptions struct {
	Follow   bool
	Since    time.Time
	Tail     int
	Instance string
}

// Logs streams a function's log lines to out until the stream ends (or,
// with Follow, until ctx ends).
func (c *Client) Logs(ctx context.Context, name string, o LogOptions, out func(wire.LogMessage) error) error {
	q := url.Values{"name": {name}, "follow": {fmt.Sprint(o.Follow)}}
	if o.Tail != 0 {
		q.Set("tail", fmt.Sprint(o.Tail))
	}
	if !o.Since.IsZero() {
		q.Set("since", o.Since.UTC().Format(time.RFC3339))
	}
	if o.Instance != "" {
		q.Set("instance", o.Instance)
	}
	if c.ns != "" {
		q.Set("namespace", c.ns)
	}
	resp, err := c.send(ctx, http.MethodGet, "/system/logs?"+q.Encode(), "", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for dec.More() {
		var m wire.LogMessage
		if err := dec.Decode(&m); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("logs: %w", err)
		}
		if err := out(m); err != nil {
			return err
		}
	}
	return nil
}

// Status describes the daemon: version, uptime, containerd, network and
// the functions and replicas by state.
func (c *Client) Status(ctx context.Context) (wire.SystemStatus, error) {
	var out wire.SystemStatus
	err := c.do(ctx, http.MethodGet, "/system/status", nil, &out)
	return out, err
}
