package client_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/emberfaas/ember/api/wire"
	"github.com/emberfaas/ember/client"
	"github.com/emberfaas/ember/function"
)

func ptr[T any](v T) *T { return &v }

// TestMethods checks each method's request, byte for byte, and what it
// makes of the answer.
func TestMethods(t *testing.T) {
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name string
		call func(context.Context, *client.Client) (any, error)
		// reply is the daemon's 2xx body.
		reply string
		// want is the request the daemon sees: method, URI, content type
		// and body.
		want request
		// wantResult is what the method returns besides its error.
		wantResult any
	}{
		{
			name: "deploy",
			call: func(ctx context.Context, c *client.Client) (any, error) {
				return nil, c.Deploy(ctx, wire.FunctionDeployment{Service: "echo", Image: "echo:1",
					Limits: &wire.FunctionResources{Memory: "128Mi"}}, 0)
			},
			want: request{method: "POST", uri: "/system/functions", contentType: "application/json",
				body: `{"service":"echo","image":"echo:1","limits":{"memory":"128Mi"}}`},
		},
		{
			name: "deploy and wait",
			call: func(ctx context.Context, c *client.Client) (any, error) {
				return nil, c.Deploy(ctx, wire.FunctionDeployment{Service: "echo", Image: "echo:1"}, 90*time.Second)
			},
			want: request{method: "POST", uri: "/system/functions?wait=1m30s", contentType: "application/json",
				body: `{"service":"echo","image":"echo:1"}`},
		},
		{
			name: "list",
			call: func(ctx context.Context, c *client.Client) (any, error) {
				return c.List(ctx)
			},
			reply: `[{"name":"echo","image":"echo:1","replicas":2,"availableReplicas":1,"createdAt":"2026-01-02T03:04:05Z",` +
				`"phase":"active","replicaStates":{"ready":1,"starting":1},"minReplicas":1,"maxReplicas":20,"autoscaling":true}]`,
			want: request{method: "GET", uri: "/system/functions"},
			wantResult: []wire.FunctionStatus{{Name: "echo", Image: "echo:1", Replicas: 2, AvailableReplicas: 1, CreatedAt: created,
				Phase: "active", ReplicaStates: map[function.State]int{"ready": 1, "starting": 1},
				MinReplicas: 1, MaxReplicas: 20, Autoscaling: true}},
		},
		{
			name: "describe",
			call: func(ctx context.Context, c *client.Client) (any, error) {
				return c.Describe(ctx, "echo")
			},
			reply:      `{"name":"echo","image":"echo:1","createdAt":"2026-01-02T03:04:05Z","lastError":"pull failed","minReplicas":1,"maxReplicas":1,"autoscaling":false}`,
			want:       request{method: "GET", uri: "/system/function/echo"},
			wantResult: wire.FunctionStatus{Name: "echo", Image: "echo:1", CreatedAt: created, LastError: "pull failed", MinReplicas: 1, MaxReplicas: 1},
		},
		{
			name: "describe escapes the name",
			call: func(ctx context.Context, c *client.Client) (any, error) {
				_, err := c.Describe(ctx, "a/b")
				return nil, err
			},
			reply: `{}`,
			want:  request{method: "GET", uri: "/system/function/a%2Fb"},
		},
		{
			name: "remove",
			call: func(ctx context.Context, c *client.Client) (any, error) {
				return nil, c.Remove(ctx, "echo")
			},
			want: request{method: "DELETE", uri: "/system/functions", contentType: "application/json",
				body: `{"functionName":"echo"}`},
		},
		{
			name: "scale to zero sends the zero",
			call: func(ctx context.Context, c *client.Client) (any, error) {
				return nil, c.Scale(ctx, "echo", 0)
			},
			want: request{method: "POST", uri: "/system/scale-function/echo", contentType: "application/json",
				body: `{"serviceName":"echo","replicas":0}`},
		},
		{
			name: "set bounds only",
			call: func(ctx context.Context, c *client.Client) (any, error) {
				return nil, c.SetBounds(ctx, "echo", nil, ptr[uint64](1), ptr[uint64](5))
			},
			want: request{method: "POST", uri: "/system/scale-function/echo", contentType: "application/json",
				body: `{"max":5,"min":1,"serviceName":"echo"}`},
		},
		{
			name: "set bounds and replicas",
			call: func(ctx context.Context, c *client.Client) (any, error) {
				return nil, c.SetBounds(ctx, "echo", ptr[uint64](3), nil, ptr[uint64](0))
			},
			want: request{method: "POST", uri: "/system/scale-function/echo", contentType: "application/json",
				body: `{"max":0,"replicas":3,"serviceName":"echo"}`},
		},
		{
			name: "restart",
			call: func(ctx context.Context, c *client.Client) (any, error) {
				return nil, c.Restart(ctx, "echo", 0)
			},
			want: request{method: "POST", uri: "/system/restart/echo"},
		},
		{
			name: "restart and wait",
			call: func(ctx context.Context, c *client.Client) (any, error) {
				return nil, c.Restart(ctx, "echo", time.Minute)
			},
			want: request{method: "POST", uri: "/system/restart/echo?wait=1m0s"},
		},
		{
			name: "info",
			call: func(ctx context.Context, c *client.Client) (any, error) {
				return c.Info(ctx)
			},
			reply: `{"provider":{"provider":"ember","version":{"sha":"abc","release":"v1"},"orchestration":"containerd"},` +
				`"version":{"commit_message":"ember v1","sha":"abc","release":"v1"},"arch":"amd64"}`,
			want: request{method: "GET", uri: "/system/info"},
			wantResult: wire.GatewayInfo{
				Provider: &wire.ProviderInfo{Name: "ember", Orchestration: "containerd", Version: &wire.VersionInfo{SHA: "abc", Release: "v1"}},
				Version:  &wire.VersionInfo{CommitMessage: "ember v1", SHA: "abc", Release: "v1"},
				Arch:     "amd64",
			},
		},
		{
			name: "import sends the archive as it is",
			call: func(ctx context.Context, c *client.Client) (any, error) {
				return c.Import(ctx, strings.NewReader("tar bytes"))
			},
			reply:      `{"images":["docker.io/library/hello:1","hello:2"]}`,
			want:       request{method: "POST", uri: "/system/images", body: "tar bytes"},
			wantResult: []string{"docker.io/library/hello:1", "hello:2"},
		},
		{
			name: "create secret",
			call: func(ctx context.Context, c *client.Client) (any, error) {
				return nil, c.CreateSecret(ctx, "token", []byte("s3cret\n"))
			},
			want: request{method: "POST", uri: "/system/secrets", contentType: "application/json",
				body: `{"name":"token","rawValue":"czNjcmV0Cg=="}`},
		},
		{
			name: "update secret",
			call: func(ctx context.Context, c *client.Client) (any, error) {
				return nil, c.UpdateSecret(ctx, "token", []byte{0, 0xff})
			},
			want: request{method: "PUT", uri: "/system/secrets", contentType: "application/json",
				body: `{"name":"token","rawValue":"AP8="}`},
		},
		{
			name: "delete secret",
			call: func(ctx context.Context, c *client.Client) (any, error) {
				return nil, c.DeleteSecret(ctx, "token")
			},
			want: request{method: "DELETE", uri: "/system/secrets", contentType: "application/json",
				body: `{"name":"token"}`},
		},
		{
			name: "list secrets",
			call: func(ctx context.Context, c *client.Client) (any, error) {
				return c.Secrets(ctx)
			},
			reply:      `[{"name":"a","namespace":"openfaas-fn"},{"name":"b","namespace":"openfaas-fn"}]`,
			want:       request{method: "GET", uri: "/system/secrets"},
			wantResult: []wire.Secret{{Name: "a", Namespace: "openfaas-fn"}, {Name: "b", Namespace: "openfaas-fn"}},
		},
		{
			name: "deploy in a namespace",
			call: func(ctx context.Context, c *client.Client) (any, error) {
				return nil, c.WithNamespace("staging").Deploy(ctx, wire.FunctionDeployment{Service: "echo", Image: "echo:1"}, 0)
			},
			want: request{method: "POST", uri: "/system/functions", contentType: "application/json",
				body: `{"service":"echo","image":"echo:1","namespace":"staging"}`},
		},
		{
			name: "list a namespace",
			call: func(ctx context.Context, c *client.Client) (any, error) {
				return c.WithNamespace("staging").List(ctx)
			},
			reply:      `[]`,
			want:       request{method: "GET", uri: "/system/functions?namespace=staging"},
			wantResult: []wire.FunctionStatus{},
		},
		{
			name: "describe in a namespace",
			call: func(ctx context.Context, c *client.Client) (any, error) {
				return c.WithNamespace("staging").Describe(ctx, "echo")
			},
			reply:      `{"name":"echo","namespace":"staging","image":"echo:1","createdAt":"2026-01-02T03:04:05Z"}`,
			want:       request{method: "GET", uri: "/system/function/echo.staging"},
			wantResult: wire.FunctionStatus{Name: "echo", Namespace: "staging", Image: "echo:1", CreatedAt: created},
		},
		{
			name: "secret in a namespace",
			call: func(ctx context.Context, c *client.Client) (any, error) {
				return nil, c.WithNamespace("staging").DeleteSecret(ctx, "db")
			},
			want: request{method: "DELETE", uri: "/system/secrets", contentType: "application/json",
				body: `{"name":"db","namespace":"staging"}`},
		},
		{
			name: "create namespace",
			call: func(ctx context.Context, c *client.Client) (any, error) {
				return nil, c.CreateNamespace(ctx, wire.FunctionNamespace{Name: "staging", Labels: map[string]string{"openfaas": "1"}})
			},
			want: request{method: "POST", uri: "/system/namespace/", contentType: "application/json",
				body: `{"name":"staging","labels":{"openfaas":"1"}}`},
		},
		{
			name: "namespaces",
			call: func(ctx context.Context, c *client.Client) (any, error) {
				return c.Namespaces(ctx)
			},
			reply:      `["openfaas-fn","staging"]`,
			want:       request{method: "GET", uri: "/system/namespaces"},
			wantResult: []string{"openfaas-fn", "staging"},
		},
		{
			name: "status",
			call: func(ctx context.Context, c *client.Client) (any, error) {
				return c.Status(ctx)
			},
			reply: `{"version":"v1","commit":"abc","started":"2026-01-02T03:04:05Z","uptimeSeconds":60,` +
				`"containerd":{"socket":"/run/containerd/containerd.sock","namespace":"ember","error":"connection refused"},` +
				`"bridge":"ember0","subnet":"10.62.0.0/16","stateDir":"/var/lib/ember","listen":":8080","socket":"/run/ember/ember.sock",` +
				`"functions":{"total":1,"byState":{"active":1}},"replicas":{"total":2,"byState":{"ready":2}},` +
				`"cleanup":{"pending":1,"failures":3,"lastError":"busy"}}`,
			want: request{method: "GET", uri: "/system/status"},
			wantResult: wire.SystemStatus{Version: "v1", Commit: "abc", Started: created, UptimeSeconds: 60,
				Containerd: wire.ContainerdStatus{Socket: "/run/containerd/containerd.sock", Namespace: "ember", Error: "connection refused"},
				Bridge:     "ember0", Subnet: "10.62.0.0/16", StateDir: "/var/lib/ember", Listen: ":8080", Socket: "/run/ember/ember.sock",
				Functions: wire.Counts{Total: 1, ByState: map[string]int{"active": 1}},
				Replicas:  wire.Counts{Total: 2, ByState: map[string]int{"ready": 2}},
				Cleanup:   &wire.CleanupStatus{Pending: 1, Failures: 3, LastError: "busy"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code := http.StatusOK
			if tc.reply == "" {
				code = http.StatusAccepted // what the daemon answers a change
			}
			srv, seen := fake(t, code, tc.reply)
			got, err := tc.call(t.Context(), client.New(srv.URL))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, <-seen, cmp.AllowUnexported(request{}),
				cmp.FilterPath(func(p cmp.Path) bool {
					f, ok := p.Last().(cmp.StructField)
					return ok && (f.Name() == "host" || f.Name() == "auth")
				}, cmp.Ignore())); diff != "" {
				t.Errorf("request (-want +got):\n%s", diff)
			}
			if tc.wantResult != nil {
				if diff := cmp.Diff(tc.wantResult, got); diff != "" {
					t.Errorf("result (-want +got):\n%s", diff)
				}
			}
		})
	}
}

// Invoke is the data plane: it sends the caller's request under
// /function/NAME, without the control plane's credentials, and hands back
// any answer, error statuses included, for the caller to show.
func TestInvoke(t *testing.T) {
	seen := make(chan request, 1)
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		seen <- request{method: r.Method, uri: r.RequestURI, auth: r.Header.Get("Authorization"),
			contentType: r.Header.Get("Content-Type"), body: string(body)}
		w.Header().Set("X-Duration-Seconds", "0.1")
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, "boom")
	})
	c := client.New(srv.URL).WithBasicAuth("admin", "secret")
	resp, err := c.Invoke(t.Context(), "echo", http.MethodPut, "sub/path?x=1", http.Header{"Content-Type": {"text/plain"}}, strings.NewReader("hi"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	want := request{method: "PUT", uri: "/function/echo/sub/path?x=1", contentType: "text/plain", body: "hi"}
	if diff := cmp.Diff(want, <-seen, cmp.AllowUnexported(request{})); diff != "" {
		t.Errorf("request (-want +got):\n%s", diff)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusInternalServerError || string(body) != "boom" ||
		resp.Header.Get("X-Duration-Seconds") != "0.1" {
		t.Errorf("got %d %q (X-Duration-Seconds %q), want the function's 500 boom as it was",
			resp.StatusCode, body, resp.Header.Get("X-Duration-Seconds"))
	}
}
