//go:build integration

package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/emberfaas/ember/api/wire"
	"github.com/emberfaas/ember/function"
	"github.com/emberfaas/ember/internal/itest"
)

// TestNamespaces drives two namespaces with the real faas-cli: the same
// function and secret names in openfaas-fn and staging are separate
// functions and secrets, each function reads its own namespace's secret
// and cannot mount another's, routes and metrics carry NAME.NS, a
// namespace that still holds anything is not deleted, and `ember export`
// of staging deploys back with faas-cli to what it was.
func TestNamespaces(t *testing.T) {
	e := setup(t)
	d := newDaemon(t, e, "--auth=true")
	run := faasCLI(t, d)
	faas := func(args ...string) string {
		t.Helper()
		out := run(args...)
		t.Logf("$ faas-cli %s\n%s", strings.Join(args, " "), out)
		return out
	}
	pw, err := os.ReadFile(filepath.Join(d.dir, "state", "basic-auth-password"))
	if err != nil {
		t.Fatal(err)
	}
	api := newFaas(t, d, strings.TrimSpace(string(pw)))

	faas("namespace", "create", "staging", "--label", "openfaas=1", "--annotation", "owner=ops")
	if out := faas("namespace", "list"); !strings.Contains(out, "openfaas-fn") || !strings.Contains(out, "staging") {
		t.Errorf("namespace list = %q, want openfaas-fn and staging", out)
	}
	if out := faas("namespace", "get", "staging"); !strings.Contains(out, "owner") {
		t.Errorf("namespace get staging = %q, want its annotation", out)
	}
	// Kept as sent (faas-cli 0.18.12 also puts openfaas=1 among the
	// annotations, as faas-netes wants of a namespace).
	r := api.do("GET", "/system/namespace/staging", nil)
	if ns := decodeJSON[wire.FunctionNamespace](t, r.body); r.code != 200 || ns.Name != "staging" ||
		ns.Labels["openfaas"] != "1" || ns.Annotations["owner"] != "ops" {
		t.Errorf("GET /system/namespace/staging = %d %s", r.code, r.body)
	}
	if r := api.do("POST", "/system/namespace/", map[string]string{"name": "staging"}); r.code != 409 {
		t.Errorf("create staging again = %d %q, want 409", r.code, r.body)
	}

	faas("secret", "create", "db", "--from-literal", "prod-value")
	faas("secret", "create", "db", "-n", "staging", "--from-literal", "staging-value")
	faas("secret", "create", "only-prod", "--from-literal", "x")
	if out := faas("secret", "list", "-n", "staging"); !strings.Contains(out, "db") || strings.Contains(out, "only-prod") {
		t.Errorf("secret list -n staging = %q, want db alone", out)
	}

	faas("deploy", "--image", e.echo, "--name", "echo", "--secret", "db", "--env", "MODE=prod")
	faas("deploy", "--image", e.echo, "--name", "echo", "-n", "staging", "--secret", "db", "--env", "MODE=staging",
		"--label", function.LabelScaleMin+"=2", "--annotation", "topic=orders", "--memory-limit", "64Mi", "--readonly")
	d.waitFor("echo", "ready", 60*time.Second, exactlyReady(1))
	staging := d.waitFor("echo.staging", "2 ready", 60*time.Second, exactlyReady(2))
	if staging.Namespace != "staging" || staging.EnvVars["MODE"] != "staging" {
		t.Errorf("staging's echo = %+v", staging)
	}

	// Routes: NAME.NS, with the default reachable bare or qualified.
	if out := faas("invoke", "echo", "-n", "staging"); !strings.Contains(out, `"method":"POST"`) {
		t.Errorf("faas-cli invoke echo -n staging = %q", out)
	}
	for path, want := range map[string]string{
		"/function/echo/_/secret?name=db":             "prod-value",
		"/function/echo.openfaas-fn/_/secret?name=db": "prod-value",
		"/function/echo.staging/_/secret?name=db":     "staging-value",
	} {
		if got, code, err := get(d.url(path)); err != nil || code != 200 || got != want {
			t.Errorf("GET %s = %q (%d, %v), want %q", path, got, code, err, want)
		}
	}
	if _, code, _ := get(d.url("/function/echo.nope/")); code != 404 {
		t.Errorf("GET /function/echo.nope/ = %d, want 404", code)
	}
	// Secrets of another namespace cannot be mounted.
	r = api.do("POST", "/system/functions", wire.FunctionDeployment{Service: "leak", Image: e.echo, Namespace: "staging", Secrets: []string{"only-prod"}})
	if r.code != 400 || !strings.Contains(r.body, "only-prod") {
		t.Errorf("deploy into staging with openfaas-fn's secret = %d %q, want 400 naming it", r.code, r.body)
	}
	if r := api.do("GET", "/system/nonsense", nil); r.code != 404 || !strings.Contains(r.body, "/system/nonsense") {
		t.Errorf("GET /system/nonsense = %d %q, want a 404 naming the route", r.code, r.body)
	}

	metrics, _, _ := get(d.url("/metrics"))
	for _, want := range []string{
		`gateway_function_invocation_total{code="200",function_name="echo.openfaas-fn"} 2`,
		`gateway_function_invocation_total{code="200",function_name="echo.staging"} 2`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics has no %s", want)
		}
	}
	// An async call to NAME.NS reaches that namespace's function.
	cb := newCallbacks(t)
	if out := faas("invoke", "echo", "-n", "staging", "--async", "--header", "X-Callback-Url: "+cb.url,
		"--header", "X-Call-Id: ns-async"); !strings.Contains(out, "Function submitted asynchronously") {
		t.Errorf("faas-cli invoke echo -n staging --async = %q", out)
	}
	cb.waitIDs(t, []string{"ns-async"}, time.Minute)
	var async itest.EchoResponse
	json.Unmarshal([]byte(cb.get("ns-async")[0].body), &async)
	if !strings.HasPrefix(async.Hostname, "echo.staging-") {
		t.Errorf("the async call to echo.staging was served by %q", async.Hostname)
	}

	if out := d.mustEmber("namespace", "ls"); out != "openfaas-fn\nstaging\n" {
		t.Errorf("ember namespace ls = %q", out)
	}
	if out := d.mustEmber("list", "-n", "staging"); !strings.Contains(out, e.echo) {
		t.Errorf("ember list -n staging = %q", out)
	}
	if out := d.mustEmber("describe", "echo", "-n", "staging", "-o", "json"); !strings.Contains(out, `"namespace": "staging"`) {
		t.Errorf("ember describe echo -n staging = %q", out)
	}
	if out := faas("list", "-n", "staging"); !strings.Contains(out, "echo") {
		t.Errorf("faas-cli list -n staging = %q", out)
	}
	faas("describe", "echo", "-n", "staging")
	faas("logs", "echo", "-n", "staging", "--tail=false")

	// A namespace that holds anything stays, and says what it holds.
	r = api.do("DELETE", "/system/namespace/staging", nil)
	if r.code != 409 || !strings.Contains(r.body, `"functions":["echo"]`) || !strings.Contains(r.body, `"secrets":["db"]`) {
		t.Errorf("DELETE non-empty staging = %d %q, want 409 listing echo and db", r.code, r.body)
	}
	if _, errOut, err := d.ember(nil, "namespace", "rm", "staging"); err == nil ||
		!strings.Contains(errOut, "namespace staging is not empty: remove its functions echo and secrets db first") {
		t.Errorf("ember namespace rm staging = %v %q, want the refusal", err, errOut)
	}
	if r := api.do("DELETE", "/system/namespace/openfaas-fn", nil); r.code != 400 {
		t.Errorf("DELETE openfaas-fn = %d %q, want 400", r.code, r.body)
	}

	// Export, remove, deploy the export with faas-cli: the same function.
	stackFile := filepath.Join(t.TempDir(), "stack.yml")
	t.Logf("$ ember export -n staging -o stack.yml\n%s", d.mustEmber("export", "-n", "staging", "-o", stackFile, "--gateway", d.url("")))
	exported, err := os.ReadFile(stackFile)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stack.yml:\n%s", exported)
	before := d.describe("echo.staging")
	faas("remove", "echo", "-n", "staging")
	waitRefGone(t, d, "echo.staging")
	faas("deploy", "-f", stackFile)
	after := d.waitFor("echo.staging", "2 ready", 60*time.Second, exactlyReady(2))
	// faas-cli 0.18.12 has diff: it compares the stack with the deployed
	// functions, exits 1 on a difference, and must find none. It lists
	// functions with GET /system/functions and adds ?namespace= only when
	// given -n, whatever the stack's namespace: says (against faas-netes
	// too), so the namespace is passed.
	if out := faas("diff", "-n", "staging", "-f", stackFile); !strings.Contains(out, "no differences found") {
		t.Errorf("faas-cli diff after the round trip:\n%s", out)
	}
	ignore := cmpopts.IgnoreFields(wire.FunctionStatus{}, "CreatedAt", "InvocationCount", "InvocationRate", "Instances", "Usage", "ReplicaStates")
	if diff := cmp.Diff(before, after, ignore); diff != "" {
		t.Errorf("staging's echo after the round trip (-before +after):\n%s", diff)
	}

	// The calls the certifier makes in a namespace (CERTIFIER_NAMESPACES)
	// that faas-cli did not above: scale with the namespace in the body,
	// logs with it in the query, each line naming the bare function and
	// its namespace.
	if r := api.do("POST", "/system/scale-function/echo", map[string]any{"serviceName": "echo", "replicas": 3, "namespace": "staging"}); r.code != 202 {
		t.Errorf("scale echo in staging = %d %q", r.code, r.body)
	}
	d.waitFor("echo.staging", "3 ready", 60*time.Second, exactlyReady(3))
	if n := len(d.describe("echo").Instances); n != 1 {
		t.Errorf("scaling staging's echo changed the default's: %d replicas", n)
	}
	r = api.do("GET", "/system/logs?name=echo&namespace=staging&follow=false&tail=-1", nil)
	lines := strings.Split(strings.TrimSpace(r.body), "\n")
	if r.code != 200 || len(lines) == 0 || lines[0] == "" {
		t.Fatalf("logs of staging's echo = %d %q", r.code, r.body)
	}
	for _, l := range lines {
		var m wire.LogMessage
		if err := json.Unmarshal([]byte(l), &m); err != nil || m.Name != "echo" || m.Namespace != "staging" ||
			!strings.HasPrefix(m.Instance, "echo.staging-") {
			t.Errorf("log line %q: %+v %v", l, m, err)
		}
	}

	faas("remove", "echo", "-n", "staging")
	waitRefGone(t, d, "echo.staging")
	faas("secret", "remove", "db", "-n", "staging")
	faas("namespace", "remove", "staging")
	if out := faas("namespace", "list"); strings.Contains(out, "staging") {
		t.Errorf("staging still listed after its removal: %q", out)
	}
	if got, code, err := get(d.url("/function/echo/_/secret?name=db")); err != nil || code != 200 || got != "prod-value" {
		t.Errorf("the default echo after staging went: %q (%d, %v)", got, code, err)
	}
}

// waitRefGone waits until a function reference (NAME.NS too) is unknown.
func waitRefGone(t *testing.T, d *daemon, ref string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := d.client.Describe(t.Context(), ref); err != nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still there after 30s", ref)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// buildPreNamespaces builds ember as it was just before namespaces came:
// the parent of the commit that added the namespace store.
func buildPreNamespaces(t *testing.T) string {
	t.Helper()
	root, err := itest.ModuleRoot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("git", "-C", root, "log", "--diff-filter=A", "--format=%H", "--", "store/namespaces.go").Output()
	commits := strings.Fields(string(out))
	if err != nil || len(commits) == 0 {
		// A source tarball or a shallow clone has no history to build the
		// old daemon from. The hashes' own fixtures (function's unit
		// tests) still guard what this test checks end to end.
		t.Skipf("skipped: building the ember from before namespaces needs the git history: %v %q", err, out)
	}
	src := t.TempDir()
	archive := exec.Command("sh", "-c", `git -C "$1" archive "$2^" | tar -x -C "$3"`, "sh", root, commits[len(commits)-1], src)
	if out, err := archive.CombinedOutput(); err != nil {
		t.Fatalf("git archive: %v\n%s", err, out)
	}
	bin := filepath.Join(t.TempDir(), "ember-old")
	build := exec.Command("go", "build", "-o", bin, "./cmd/ember")
	build.Dir, build.Env = src, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the previous ember: %v\n%s", err, out)
	}
	return bin
}

// TestUpgradeToNamespacesAdopts runs a function with a secret under the
// ember from before namespaces, replaces the daemon with this one, and
// finds the same replicas serving: the default namespace's keys,
// containers, spec hashes and metric labels did not change.
func TestUpgradeToNamespacesAdopts(t *testing.T) {
	e := setup(t)
	old := buildPreNamespaces(t)
	d := newDaemon(t, e)
	d.kill9()
	d.Bin = old
	d.start()
	d.mustEmber("secret", "create", "db", "--from-literal", "v1")
	d.mustEmber("deploy", "echo", "--image", e.echo, "--secret", "db", "--label", function.LabelScaleMin+"=2")
	before := d.waitFor("echo", "2 ready", 60*time.Second, exactlyReady(2))
	if got, code, err := get(d.url("/function/echo/_/secret?name=db")); err != nil || code != 200 || got != "v1" {
		t.Fatalf("before the upgrade: %q %d %v", got, code, err)
	}

	d.kill9()
	d.Bin = e.bin
	d.start()
	after := d.waitFor("echo", "2 ready", 60*time.Second, exactlyReady(2))
	if diff := cmp.Diff(replicaIDs(before), replicaIDs(after)); diff != "" {
		t.Errorf("replicas after the upgrade (-before +after):\n%s", diff)
	}
	// The same replicas, never restarted, of the same spec hash. (Their
	// start time is not compared: an adopted replica's is containerd's
	// record of its container, a moment after the controller's.)
	type proc struct {
		Restarts int
		Hash     string
	}
	procs := func(f wire.FunctionStatus) map[string]proc {
		m := map[string]proc{}
		for _, r := range f.Instances {
			m[r.ID] = proc{r.Restarts, r.Hash}
		}
		return m
	}
	if diff := cmp.Diff(procs(before), procs(after)); diff != "" {
		t.Errorf("replica processes after the upgrade (-before +after):\n%s", diff)
	}
	if got, code, err := get(d.url("/function/echo.openfaas-fn/_/secret?name=db")); err != nil || code != 200 || got != "v1" {
		t.Errorf("after the upgrade: %q %d %v", got, code, err)
	}
	// An unchanged redeploy rolls nothing: the spec hash is the same.
	d.mustEmber("deploy", "echo", "--image", e.echo, "--secret", "db", "--label", function.LabelScaleMin+"=2")
	again := d.waitFor("echo", "2 ready", 60*time.Second, exactlyReady(2))
	if diff := cmp.Diff(replicaIDs(before), replicaIDs(again)); diff != "" {
		t.Errorf("an unchanged redeploy after the upgrade replaced replicas (-before +after):\n%s", diff)
	}
	metrics, _, _ := get(d.url("/metrics"))
	if want := `gateway_function_invocation_total{code="200",function_name="echo.openfaas-fn"} 1`; !strings.Contains(metrics, want) {
		t.Errorf("/metrics has no %s", want)
	}
}
