package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/emberfaas/ember/api/wire"
)

// Namespaces lists the namespaces' names, the default first.
func (c *Client) Namespaces(ctx context.Context) ([]string, error) {
	var out []string
	err := c.do(ctx, http.MethodGet, "/system/namespaces", nil, &out)
	return out, err
}

// Namespace returns one namespace with its labels and annotations.
func (c *Client) Namespace(ctx context.Context, name string) (wire.FunctionNamespace, error) {
	var out wire.FunctionNamespace
	err := c.do(ctx, http.MethodGet, "/system/namespace/"+url.PathEscape(name), nil, &out)
	return out, err
}

// CreateNamespace makes a namespace; an existing one is a 409 StatusError.
func (c *Client) CreateNamespace(ctx context.Context, ns wire.FunctionNamespace) error {
	return c.do(ctx, http.MethodPost, "/system/namespace/", ns, nil)
}

// UpdateNamespace replaces a namespace's labels and annotations.
func (c *Client) UpdateNamespace(ctx context.Context, ns wire.FunctionNamespace) error {
	return c.do(ctx, http.MethodPut, "/system/namespace/"+url.PathEscape(ns.Name), ns, nil)
}

// DeleteNamespace removes an empty namespace; one that still holds
// functions or secrets is a 409 StatusError that lists them.
func (c *Client) DeleteNamespace(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/system/namespace/"+url.PathEscape(name), nil, nil)
}
