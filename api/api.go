package api

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"runtime"
	"strconv"
	"time"

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

// Images loads image archives.
type Images interface {
	Import(ctx context.Context, archive io.Reader) ([]string, error)
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
	projector SecretProjector
	logsrc    Logs
	proxy     http.Handler
	gather    prometheus.Gatherer
	log       *slog.Logger
	ready     func() bool
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
	// Proxy serves /function/*.
	Proxy http.Handler
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
	return &API{cfg: cfg, fns: d.Functions, images: d.Images, secrets: d.Secrets, projector: d.SecretProjector, logsrc: d.Logs,
		proxy: d.Proxy, gather: d.Gatherer, ready: d.Ready, log: log}
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
	sys(http.MethodGet, "/system/namespaces", a.namespaces)
	sys(http.MethodPost, "/system/images", a.importImages)
	sys(http.MethodGet, "/system/secrets", a.listSecrets)
	sys(http.MethodPost, "/system/secrets", a.createSecret)
	sys(http.MethodPut, "/system/secrets", a.updateSecret)
	sys(http.MethodDelete, "/system/secrets", a.deleteSecret)
	sys(http.MethodGet, "/system/logs", a.logs)
	sys(http.MethodGet, "/system/namespace/:name", a.namespace)

	r.Handle(http.MethodGet, "/healthz", a.healthz)
	r.Handle(http.MethodHead, "/healthz", a.healthz)
	metrics := promhttp.HandlerFor(a.gather, promhttp.HandlerOpts{})
	r.Handler(http.MethodGet, "/metrics", metrics)
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodHead} {
		r.Handler(m, "/function/*path", a.proxy)
	}
	return r
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

func (a *API) listFunctions(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	if !validNamespace(w, r.URL.Query().Get("namespace")) {
		return
	}
	specs := a.fns.Functions()
	out := make([]wire.FunctionStatus, 0, len(specs))
	for _, s := range specs {
		st, err := a.fns.Status(s.Name)
		if err != nil {
			continue // removed meanwhile
		}
		out = append(out, toStatus(s, st, false))
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) describeFunction(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	name, ok := a.resolve(w, ps.ByName("name"), r.URL.Query().Get("namespace"))
	if !ok {
		return
	}
	spec, err := a.fns.Spec(name)
	if err != nil {
		writeError(w, err)
		return
	}
	st, err := a.fns.Status(name)
	if err != nil {
		writeError(w, err)
		return
	}
	fs := toStatus(spec, st, true)
	// faas-cli asks with usage=1; the gateway's scaler with usage=false.
	if u, _ := strconv.ParseBool(r.URL.Query().Get("usage")); u || r.URL.Query().Get("usage") == "" {
		if us, err := a.fns.Usage(name); err == nil {
			fs.Usage = &wire.FunctionUsage{CPU: us.CPU, TotalMemoryBytes: us.MemoryBytes}
		}
	}
	writeJSON(w, http.StatusOK, fs)
}

func (a *API) deployFunction(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	a.deploy(w, r, false)
}

func (a *API) updateFunction(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	a.deploy(w, r, true)
}

// deploy handles POST (create or update, as faasd does) and PUT (update
// only: 404 makes faas-cli fall back to POST). With ?wait=DURATION, ember's
// CLI waits for a ready replica and gets the reason when there is none.
//
// Everything the request carries is checked before anything changes: a
// request that is refused has deployed nothing.
func (a *API) deploy(w http.ResponseWriter, r *http.Request, update bool) {
	wait, ok := parseWait(w, r)
	if !ok {
		return
	}
	var req wire.FunctionDeployment
	if !a.decode(w, r, &req) {
		return
	}
	if !validNamespace(w, namespaceOf(req.Namespace, r)) {
		return
	}
	spec := req.Spec()
	if err := spec.Validate(); err != nil {
		writeError(w, err)
		return
	}
	if update {
		if _, err := a.fns.Spec(req.Service); err != nil {
			writeError(w, err)
			return
		}
	}
	if err := a.fns.Deploy(r.Context(), spec); err != nil {
		writeError(w, err)
		return
	}
	if !a.waitReady(w, r, spec.Name, wait) {
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func (a *API) deleteFunction(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	var req wire.DeleteFunctionRequest
	if !a.decode(w, r, &req) {
		return
	}
	name, ok := a.resolve(w, req.FunctionName, namespaceOf(req.Namespace, r))
	if !ok {
		return
	}
	if err := a.fns.Remove(r.Context(), name); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func (a *API) scaleFunction(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	// Replicas absent is 0 (park) for OpenFaaS clients, unless ember's
	// min or max is given: then only the bounds change.
	var req struct {
		wire.ScaleServiceRequest
		Replicas *uint64 `json:"replicas"`
	}
	if !a.decode(w, r, &req) {
		return
	}
	ref := ps.ByName("name")
	if ref == "" {
		ref = req.ServiceName
	}
	name, ok := a.resolve(w, ref, namespaceOf(req.Namespace, r))
	if !ok {
		return
	}
	bound := func(v *uint64) *int {
		if v == nil {
			return nil
		}
		n := int(min(*v, function.ReplicaLimit+1))
		return &n
	}
	if req.Min != nil || req.Max != nil {
		if err := a.fns.SetBounds(r.Context(), name, bound(req.Min), bound(req.Max)); err != nil {
			writeError(w, err)
			return
		}
		if req.Replicas == nil {
			w.WriteHeader(http.StatusAccepted)
			return
		}
	}
	var n uint64
	if req.Replicas != nil {
		n = *req.Replicas
	}
	if n > function.ReplicaLimit {
		http.Error(w, fmt.Sprintf("replicas must be at most %d", function.ReplicaLimit), http.StatusBadRequest)
		return
	}
	if err := a.fns.Scale(r.Context(), name, int(n)); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// restartFunction replaces a function's replicas with fresh ones in a
// rolling update, for apps that read their secrets or configuration only
// at start. ember's own route: OpenFaaS has none. With ?wait=DURATION it
// answers once a restarted replica is ready.
func (a *API) restartFunction(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	wait, ok := parseWait(w, r)
	if !ok {
		return
	}
	name, ok := a.resolve(w, ps.ByName("name"), r.URL.Query().Get("namespace"))
	if !ok {
		return
	}
	if err := a.fns.Restart(r.Context(), name); err != nil {
		writeError(w, err)
		return
	}
	if !a.waitReady(w, r, name, wait) {
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// parseWait reads ?wait=DURATION, answering 400 when it is not a positive
// duration. Handlers call it before they change anything.
func parseWait(w http.ResponseWriter, r *http.Request) (time.Duration, bool) {
	ws := r.URL.Query().Get("wait")
	if ws == "" {
		return 0, true
	}
	d, err := time.ParseDuration(ws)
	if err != nil || d <= 0 {
		http.Error(w, fmt.Sprintf("wait %q is not a positive duration such as 60s", ws), http.StatusBadRequest)
		return 0, false
	}
	return d, true
}

// waitReady waits up to d (from parseWait; 0: not at all) for a ready
// replica of the function's current spec, answering the reason when there
// is none.
func (a *API) waitReady(w http.ResponseWriter, r *http.Request, name string, d time.Duration) bool {
	if d == 0 {
		return true
	}
	ctx, cancel := context.WithTimeout(r.Context(), d)
	defer cancel()
	if err := a.fns.WaitReady(ctx, name); err != nil {
		http.Error(w, err.Error(), http.StatusGatewayTimeout)
		return false
	}
	return true
}

func (a *API) info(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	v := &wire.VersionInfo{Release: a.cfg.Version, SHA: a.cfg.Commit, CommitMessage: "ember " + a.cfg.Version}
	writeJSON(w, http.StatusOK, wire.GatewayInfo{
		Provider: &wire.ProviderInfo{Name: "ember", Orchestration: "containerd", Version: v},
		Version:  v,
		Arch:     runtime.GOARCH,
	})
}

func (a *API) namespaces(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	writeJSON(w, http.StatusOK, []string{function.DefaultNamespace})
}

// namespace answers for the one namespace ember has; creating others is
// not supported (OpenFaaS CE answers the same way).
func (a *API) namespace(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	if ps.ByName("name") != function.DefaultNamespace {
		http.Error(w, "namespace "+ps.ByName("name")+" not found", http.StatusNotFound)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"name": function.DefaultNamespace, "labels": map[string]string{"openfaas": "1"}})
}

func (a *API) importImages(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	names, err := a.images.Import(r.Context(), r.Body)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.ImportResult{Images: names})
}

// resolve turns a path or body reference ("NAME" or "NAME.NAMESPACE") plus
// a namespace into a function name, answering 404 for other namespaces.
func (a *API) resolve(w http.ResponseWriter, ref, ns string) (string, bool) {
	name, refNS := function.SplitRef(ref)
	if ns == "" {
		ns = refNS
	}
	if !validNamespace(w, ns) {
		return "", false
	}
	if err := function.ValidateName(name); err != nil {
		writeError(w, err)
		return "", false
	}
	return name, true
}

// namespaceOf applies OpenFaaS's rule: body, else query, else default.
func namespaceOf(body string, r *http.Request) string {
	if body != "" {
		return body
	}
	return r.URL.Query().Get("namespace")
}

func validNamespace(w http.ResponseWriter, ns string) bool {
	if ns == "" || ns == function.DefaultNamespace {
		return true
	}
	http.Error(w, fmt.Sprintf("namespace %q not found: ember has only %q", ns, function.DefaultNamespace), http.StatusNotFound)
	return false
}

// decode reads a body of exactly one JSON value (and white space): bytes
// after it are refused, not ignored, so a truncated or concatenated
// request is never half-applied.
func (a *API) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	body := http.MaxBytesReader(w, r.Body, a.cfg.MaxBodyBytes)
	dec := json.NewDecoder(body)
	err := dec.Decode(v)
	if err == nil {
		var extra json.RawMessage
		switch err = dec.Decode(&extra); {
		case err == io.EOF:
			return true
		case err == nil:
			err = errors.New("more than one JSON value")
		default:
			var mbe *http.MaxBytesError
			if !errors.As(err, &mbe) {
				err = fmt.Errorf("data after the JSON value: %w", err)
			}
		}
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		http.Error(w, fmt.Sprintf("request body larger than %d bytes", mbe.Limit), http.StatusRequestEntityTooLarge)
		return false
	}
	http.Error(w, "malformed JSON body: "+err.Error(), http.StatusBadRequest)
	return false
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// writeError maps ember's error kinds to status codes; the message is the
// error's text, which names what was wrong.
func writeError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, function.ErrInvalid), errors.Is(err, function.ErrImageNotFound):
		code = http.StatusBadRequest
	case errors.Is(err, function.ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, function.ErrImage):
		code = http.StatusBadGateway
	case errors.Is(err, function.ErrNoSpace):
		code = http.StatusInsufficientStorage
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		code = http.StatusServiceUnavailable
	}
	http.Error(w, err.Error(), code)
}

func toStatus(s function.Spec, st function.Status, detail bool) wire.FunctionStatus {
	labels, annotations := maps.Clone(s.Labels), s.Annotations
	if labels == nil {
		labels = map[string]string{}
	}
	// As OpenFaaS providers do (the certifier checks it); derived, so
	// never stored, and dropped again if a client sends it back.
	labels[function.LabelFunctionName] = s.Name
	if annotations == nil {
		annotations = map[string]string{}
	}
	fs := wire.FunctionStatus{
		Name:                   s.Name,
		Image:                  s.Image,
		Namespace:              function.DefaultNamespace,
		EnvProcess:             s.EnvProcess,
		EnvVars:                s.Env,
		Constraints:            s.Constraints,
		Secrets:                s.Secrets,
		Labels:                 &labels,
		Annotations:            &annotations,
		ReadOnlyRootFilesystem: s.ReadOnlyRootFilesystem,
		InvocationCount:        float64(st.Invoked),
		Replicas:               uint64(st.Desired),
		AvailableReplicas:      uint64(st.Ready),
		CreatedAt:              s.CreatedAt,
		Phase:                  st.Phase,
	}
	for _, r := range st.Replicas {
		if fs.ReplicaStates == nil {
			fs.ReplicaStates = map[function.State]int{}
		}
		fs.ReplicaStates[r.State]++
	}
	if s.Limits != nil {
		fs.Limits = &wire.FunctionResources{Memory: s.Limits.Memory, CPU: s.Limits.CPU}
	}
	if s.Requests != nil {
		fs.Requests = &wire.FunctionResources{Memory: s.Requests.Memory, CPU: s.Requests.CPU}
	}
	fs.MinReplicas, fs.MaxReplicas = s.MinReplicas(), max(s.MaxReplicas(), s.MinReplicas())
	fs.Autoscaling = s.Autoscaled()
	if detail {
		fs.Instances = st.Replicas
		fs.LastError = st.LastError
	}
	return fs
}
