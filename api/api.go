package api

import (
	"context"
	"crypto/subtle"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"

	"github.com/julienschmidt/httprouter"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/emberfaas/ember/api/wire"
	"github.com/emberfaas/ember/function"
)

// Functions is what the API needs of the controller.
type Functions interface {
	Deploy(ctx context.Context, spec function.Spec) error
	Remove(ctx context.Context, name string) error
	Scale(ctx context.Context, name string, replicas int) error
	SetBounds(ctx context.Context, name string, min, max *int) error
	Restart(ctx context.Context, name string) error
	Spec(name string) (function.Spec, error)
	Status(name string) (function.Status, error)
	Functions() []function.Spec
	WaitReady(ctx context.Context, name string) error
	Usage(name string) (function.Usage, error)
}

// Config configures the API.
type Config struct {
	// Version and Commit describe this build.
	Version, Commit string
	// User and Password guard /system/* on TCP. An empty password turns
	// authentication off.
	User, Password string
	// MaxBodyBytes limits JSON request bodies (default 1 MiB).
	MaxBodyBytes int64
	// Status describes the daemon for GET /system/status.
	Status StatusConfig
}

// API serves the control plane.
type API struct {
	cfg     Config
	fns     Functions
	images  Images
	secrets Secrets
	// projector is nil when nothing needs telling of secret changes.
	projector   SecretProjector
	logsrc      Logs
	svc         ServiceHost
	proxy       http.Handler
	async       http.Handler
	asyncQueues func(context.Context) ([]wire.AsyncQueue, error)
	ui          http.Handler
	gather      prometheus.Gatherer
	log         *slog.Logger
	ready       func() bool
	nss         Namespaces
	// nsMu is held for reading by deploys and for writing by a
	// namespace's deletion.
	nsMu sync.RWMutex
}

// Deps are the API's collaborators.
type Deps struct {
	Functions Functions
	Images    Images
	Secrets   Secrets
	// SecretProjector, when set, is told of every secret update and
	// deletion, so running replicas see the change.
	SecretProjector SecretProjector
	Logs            Logs
	// Services, when set, enables /system/services.
	Services ServiceHost
	// Proxy serves /function/*.
	Proxy http.Handler
	// Async, when set, serves POST /async-function/*.
	Async http.Handler
	// AsyncQueues, when set, reports the async queue for GET /system/queue.
	AsyncQueues func(context.Context) ([]wire.AsyncQueue, error)
	// UI, when set, serves the dashboard under /ui/, behind the same auth
	// as /system/*; / then redirects to it.
	UI http.Handler
	// Namespaces keeps the function namespaces; nil means only the
	// default exists.
	Namespaces Namespaces
	// Gatherer feeds /metrics.
	Gatherer prometheus.Gatherer
	// Ready reports whether the daemon has finished starting (for
	// /healthz); nil means always.
	Ready func() bool
}

// New returns the API.
func New(cfg Config, d Deps, log *slog.Logger) *API {
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if d.Namespaces == nil {
		d.Namespaces = onlyDefault{}
	}
	return &API{cfg: cfg, fns: d.Functions, images: d.Images, secrets: d.Secrets, projector: d.SecretProjector, logsrc: d.Logs, svc: d.Services,
		proxy: d.Proxy, async: d.Async, asyncQueues: d.AsyncQueues, ui: d.UI, gather: d.Gatherer, ready: d.Ready, log: log, nss: d.Namespaces}
}

// Handler returns the HTTP handler. With auth, /system/* requires basic
// auth (TCP); without, it does not (the unix socket).
func (a *API) Handler(auth bool) http.Handler {
	r := httprouter.New()
	r.HandleMethodNotAllowed = true
	sys := func(method, path string, h httprouter.Handle) {
		if auth && a.cfg.Password != "" {
			h = a.basicAuth(h)
		}
		r.Handle(method, path, h)
	}
	sys(http.MethodGet, "/system/functions", a.listFunctions)
	sys(http.MethodPost, "/system/functions", a.deployFunction)
	sys(http.MethodPut, "/system/functions", a.updateFunction)
	sys(http.MethodDelete, "/system/functions", a.deleteFunction)
	sys(http.MethodGet, "/system/function/:name", a.describeFunction)
	sys(http.MethodPost, "/system/scale-function/:name", a.scaleFunction)
	sys(http.MethodPost, "/system/scale-function", a.scaleFunction)
	sys(http.MethodPost, "/system/restart/:name", a.restartFunction)
	sys(http.MethodGet, "/system/info", a.info)
	sys(http.MethodGet, "/system/status", a.systemStatus)
	sys(http.MethodGet, "/system/namespaces", a.listNamespaces)
	sys(http.MethodPost, "/system/images", a.importImages)
	sys(http.MethodGet, "/system/secrets", a.listSecrets)
	sys(http.MethodPost, "/system/secrets", a.createSecret)
	sys(http.MethodPut, "/system/secrets", a.updateSecret)
	sys(http.MethodDelete, "/system/secrets", a.deleteSecret)
	sys(http.MethodGet, "/system/logs", a.logs)
	// faas-cli's SDK creates with POST /system/namespace/ and the name
	// in the body; the rest name it in the path.
	sys(http.MethodGet, "/system/namespace/*name", a.getNamespace)
	sys(http.MethodPost, "/system/namespace/*name", a.createNamespace)
	sys(http.MethodPut, "/system/namespace/*name", a.updateNamespace)
	sys(http.MethodDelete, "/system/namespace/*name", a.deleteNamespace)
	if a.asyncQueues != nil {
		sys(http.MethodGet, "/system/queue", a.queue)
	}
	sys(http.MethodGet, "/system/services", a.listServices)
	sys(http.MethodPost, "/system/services", a.upServices)
	sys(http.MethodDelete, "/system/services/:name", a.downService)
	sys(http.MethodPost, "/system/services/:name/restart", a.restartService)

	if a.ui != nil {
		ui := func(w http.ResponseWriter, r *http.Request, _ httprouter.Params) { a.ui.ServeHTTP(w, r) }
		sys(http.MethodGet, "/ui/*filepath", ui)
		sys(http.MethodHead, "/ui/*filepath", ui)
		// As on OpenFaaS's gateway, the root is the dashboard.
		r.Handle(http.MethodGet, "/", func(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
			http.Redirect(w, r, "/ui/", http.StatusFound)
		})
	}

	r.Handle(http.MethodGet, "/healthz", a.healthz)
	r.Handle(http.MethodHead, "/healthz", a.healthz)
	metrics := promhttp.HandlerFor(a.gather, promhttp.HandlerOpts{})
	r.Handler(http.MethodGet, "/metrics", metrics)
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodHead} { // as isFunctionMethod
		r.Handler(m, functionPrefix+"*path", a.proxy)
	}
	if a.async != nil {
		r.Handler(http.MethodPost, "/async-function/*path", a.async)
	}
	r.NotFound = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/system/") {
			systemNotFound(w, r)
			return
		}
		http.NotFound(w, r)
	})
	return &dispatch{proxy: a.proxy, router: r}
}

// functionPrefix is where the proxy serves functions; it parses what
// follows (the function's name and namespace) itself.
const functionPrefix = "/function/"

// dispatch hands function calls to the proxy before the router sees
// them: a call is the gateway's hot path, and the router's catch-all
// route costs it a parameter slice and a copy of the request carrying
// them in its context, neither of which the proxy reads. Everything else,
// and a function path with a method the router would refuse, goes
// through the router, which has the same route for /function/* (so that
// both ways give the same answer).
type dispatch struct {
	proxy  http.Handler
	router http.Handler
}

func (d *dispatch) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if d.proxy != nil && strings.HasPrefix(r.URL.Path, functionPrefix) && isFunctionMethod(r.Method) {
		d.proxy.ServeHTTP(w, r)
		return
	}
	d.router.ServeHTTP(w, r)
}

// isFunctionMethod reports the methods a function may be called with.
func isFunctionMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodHead:
		return true
	}
	return false
}

func (a *API) basicAuth(h httprouter.Handle) httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		user, pass, ok := r.BasicAuth()
		if !ok || user != a.cfg.User || subtle.ConstantTimeCompare([]byte(pass), []byte(a.cfg.Password)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="Restricted"`)
			http.Error(w, "invalid credentials", http.StatusUnauthorized)
			return
		}
		h(w, r, ps)
	}
}

func (a *API) healthz(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	if a.ready != nil && !a.ready() {
		http.Error(w, "starting", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, "OK")
}

// queue reports the async calls per function.
func (a *API) queue(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	qs, err := a.asyncQueues(r.Context())
	if err != nil {
		a.log.Warn("async queue stats", "err", err)
		http.Error(w, "async queue: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, http.StatusOK, qs)
}
