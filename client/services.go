package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/emberfaas/ember/api/wire"
)

// ServicesUp deploys services, in order, and says what it did to each.
func (c *Client) ServicesUp(ctx context.Context, up wire.ServicesUp) ([]wire.ServiceResult, error) {
	var out []wire.ServiceResult
	err := c.do(ctx, http.MethodPost, "/system/services", up, &out)
	return out, err
}

// Services lists the services.
func (c *Client) Services(ctx context.Context) ([]wire.ServiceStatus, error) {
	var out []wire.ServiceStatus
	err := c.do(ctx, http.MethodGet, "/system/services", nil, &out)
	return out, err
}

// ServiceDown removes a service; volumes removes its named volumes too.
func (c *Client) ServiceDown(ctx context.Context, name string, volumes bool) error {
	p := "/system/services/" + url.PathEscape(name)
	if volumes {
		p += "?volumes=true"
	}
	return c.do(ctx, http.MethodDelete, p, nil, nil)
}

// ServiceRestart restarts a service's replica.
func (c *Client) ServiceRestart(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodPost, "/system/services/"+url.PathEscape(name)+"/restart", nil, nil)
}
