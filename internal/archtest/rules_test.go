package archtest

// The rules, as docs/ARCHITECTURE.md explains them. A package missing here
// fails the test: a new package must say where it sits.

// rule says which packages of ours one package may import: imports for
// its production code, testImports for its test files on top of those.
type rule struct {
	imports     []string
	testImports []string
	why         string
}

var rules = map[string]rule{
	"function": {why: "plain value types every package shares: it depends on none of ours"},
	"store":    {imports: []string{"function"}, why: "durable desired state; knows the types it stores, nothing of the running system"},
	"network":  {why: "CNI for one bridge; types of its own so it can be tested alone in a netns"},
	"runtime":  {imports: []string{"function"}, why: "containerd; reaches the network through an interface it declares"},
	"scale":    {imports: []string{"function"}, why: "the controller; reaches runtime and store through interfaces it declares, tested against one stateful fake"},
	"proxy":    {imports: []string{"function"}, why: "the data plane; asks the controller for a replica through Backends, never starts tasks"},
	"queue":    {imports: []string{"function"}, why: "async calls on NATS JetStream; replays them through an Invoker (the proxy) and looks functions up through Specs, interfaces it declares"},
	"api":      {imports: []string{"api/wire", "function"}, why: "the control plane; reaches the controller, runtime and store through interfaces it declares"},
	"api/wire": {imports: []string{"function"}, why: "the API's JSON bodies, shared by server and clients: a leaf, so a client links no server code"},
	"client":   {imports: []string{"api/wire", "function"}, why: "the typed client speaks the wire types, never the server; its tests fake the daemon rather than link api"},
	"compose":  {imports: []string{"function"}, why: "reads compose files into service specs; the daemon validates and runs them like any spec"},
	"stack":    {imports: []string{"api/wire", "function"}, why: "reads stack.yml into the wire package's deploy requests"},
	"ui":       {why: "the dashboard's embedded files: the page is a client of /system/* like any other, so it needs no Go code of ours"},
	"cmd/ember": {
		imports:     []string{"api", "api/wire", "client", "compose", "function", "network", "proxy", "queue", "runtime", "scale", "stack", "store", "ui"},
		testImports: []string{"internal/itest"},
		why:         "the composition root: the only package that wires the others together",
	},
	"examples/hello": {why: "a function users copy: it must build with nothing of ember's"},

	"internal/archtest":           {why: "this test"},
	"internal/imagebuild":         {why: "builds OCI images from Go source without Docker, for tests and make examples"},
	"internal/imagebuild/mkimage": {imports: []string{"internal/imagebuild"}, why: "make examples' command"},
	"internal/itest": {
		imports: []string{"internal/imagebuild", "network"},
		why:     "the integration harness: private containerd, registry, daemons; network for tearing down what a daemon left",
	},
	"internal/installtest":     {testImports: []string{"api/wire", "internal/itest"}, why: "runs install.sh as a user would"},
	"internal/bench":           {imports: []string{"api/wire", "client", "function", "internal/itest"}, why: "benchmarks drive real daemons through the client, like users"},
	"internal/bench/cmd/bench": {imports: []string{"internal/bench"}, why: "make bench's command"},
}

// foreignRule keeps a third-party module behind the packages that own it.
// Dependencies count directly or through others, for production and test
// builds alike.
type foreignRule struct {
	prefix string
	users  []string
	why    string
}

var foreignRules = []foreignRule{
	{"github.com/spf13/cobra", []string{"cmd/ember"},
		"flags are turned into typed options in cmd; logic packages take writers, not commands"},
	{"github.com/containerd/containerd", []string{"runtime", "cmd/ember", "internal/itest", "internal/installtest", "internal/bench", "internal/bench/cmd/bench"},
		"containerd is runtime's business; the harness starts and inspects a private one"},
	{"github.com/containernetworking/cni", []string{"network", "cmd/ember", "internal/itest", "internal/installtest", "internal/bench", "internal/bench/cmd/bench"},
		"CNI is network's business"},
	{"github.com/chromedp", []string{"cmd/ember"},
		"a real browser drives the dashboard in cmd's integration tests; the dashboard itself is plain files"},
	{"go.etcd.io/bbolt", []string{"store", "cmd/ember"},
		"the database file is store's business"},
	{"github.com/julienschmidt/httprouter", []string{"api", "cmd/ember"},
		"routing is the api's business; clients speak api/wire, so a program that talks to ember links no router"},
	{"github.com/nats-io/nats-server/v2", []string{"queue", "cmd/ember"},
		"the embedded NATS server is the queue's business"},
	{"github.com/nats-io/nats.go", []string{"queue", "cmd/ember"},
		"the NATS client is the queue's business: the daemon links it through queue, nothing else does"},
	{"github.com/compose-spec/compose-go", []string{"compose", "cmd/ember"},
		"the compose file format is compose's business; the daemon and the API see only service specs"},
	{"github.com/prometheus/client_golang", []string{"api", "scale", "proxy", "queue", "runtime", "cmd/ember"},
		"metrics belong to the daemon's packages, on an injected Registerer; client and stack link none"},
}
