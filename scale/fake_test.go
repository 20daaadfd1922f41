package scale_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/emberfaas/ember/function"
	"github.com/emberfaas/ember/scale"
)

var (
	_ scale.Images   = (*fakeRuntime)(nil)
	_ scale.Replicas = (*fakeRuntime)(nil)
	_ scale.Tasks    = (*fakeRuntime)(nil)
	_ scale.Freezer  = (*fakeRuntime)(nil)
	_ scale.Prober   = (*fakeRuntime)(nil)
	_ scale.Logs     = (*fakeRuntime)(nil)
	_ scale.Usage    = (*fakeRuntime)(nil)
	_ scale.Sweeper  = (*fakeRuntime)(nil)
	_ scale.Placer   = (*fakeRuntime)(nil)
	_ scale.Store    = (*fakeStore)(nil)
)

// fakeRuntime is an in-memory container runtime playing every runtime role
// of scale.Deps: replicas are map entries, processes are pids, exits are
// fired by the test. It starts no goroutines of its own except through
// context.AfterFunc on contexts the controller cancels, so it is safe
// inside a synctest bubble (build it there).
type fakeRuntime struct {
	mu        sync.Mutex // guards below
	reps      map[string]*fakeReplica
	nextIP    int
	nextPid   uint32
	newLock   bool              // lock state of newly created replicas
	newReady  int               // readiness status of newly created replicas
	failImage map[string]error  // image → EnsureImage error
	crash     map[string]uint32 // image → exit code: processes exit as soon as waited for
	logTail   []string
	probeErr  error // returned by every ProbeLock while set
	pulled    []string
	created   []createRec
	restarted []restartRec
	frozen    []string // cgroups, in order
	thawed    []string
	parked    []string
	unparked  []string
	removed   []string
	swept     []string
	// failRemoves and failSweeps make that many next calls of Remove or
	// Sweep fail, freeing nothing.
	failRemoves, failSweeps int
	sweeps                  int // calls of Sweep
	// onRemove runs at the start of Remove, outside mu, so it may call
	// back into the controller.
	onRemove func(fn, id string)
	// journal records calls by verb and function, for tests that count
	// what an idle function costs.
	journal []fakeCall
	// failCreate, when set, fails every Create (after its gate).
	failCreate error
	// createGate, when set, holds every Create until a value is received
	// from it (or its context ends); inCreate counts those held.
	createGate         chan struct{}
	inCreate, maxInCre int
	attempts           []time.Time // every Create call, failed or not
	// healthy is what a service's healthcheck answers; hosts what the
	// controller last published.
	healthy bool
	hosts   map[string]netip.Addr
	// cpuTotal, when set, is the millicores Usage reports for all known
	// cgroups together, split evenly: a load that more replicas share.
	// Unset, each reports 100.
	cpuTotal float64
}

// fakeCall is one call the controller made to the runtime.
type fakeCall struct {
	Op, Function string
	At           time.Time
}

type fakeReplica struct {
	inst    function.Instance
	image   string
	lock    bool
	ready   int // status its readiness path answers; 0: connection refused
	waiters []*fakeWaiter
	// log is its output, appended as a log file is: each run that ends
	// adds the runtime's logTail.
	log []string
}

type fakeWaiter struct {
	ch   chan function.Exit
	done bool
}

type createRec struct {
	Function, ID, Hash string
	At                 time.Time
}

type restartRec struct {
	ID string
	At time.Time
}

// deps is the controller's dependencies: rt in every runtime role, and st.
func (rt *fakeRuntime) deps(st scale.Store) scale.Deps {
	return scale.Deps{Images: rt, Replicas: rt, Tasks: rt, Freezer: rt, Prober: rt, Logs: rt, Usage: rt, Sweeper: rt, Store: st, Health: rt, Hosts: rt, Place: rt}
}

func newFakeRuntime() *fakeRuntime {
	return &fakeRuntime{
		reps:      map[string]*fakeReplica{},
		newLock:   true,
		newReady:  200,
		failImage: map[string]error{},
		crash:     map[string]uint32{},
		logTail:   []string{"fake: last line of output"},
	}
}

func (rt *fakeRuntime) EnsureImage(ctx context.Context, ref string) (string, error) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if err := rt.failImage[ref]; err != nil {
		return "", fmt.Errorf("pull %s: %w", ref, err)
	}
	rt.pulled = append(rt.pulled, ref)
	return "sha256:" + ref, nil
}

func (rt *fakeRuntime) Create(ctx context.Context, spec function.Spec, id string) (function.Instance, error) {
	rt.mu.Lock()
	rt.attempts = append(rt.attempts, time.Now())
	gate := rt.createGate
	rt.inCreate++
	rt.maxInCre = max(rt.maxInCre, rt.inCreate)
	rt.mu.Unlock()
	var cerr error
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			cerr = ctx.Err()
		}
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.inCreate--
	if cerr != nil {
		return function.Instance{}, cerr
	}
	if rt.failCreate != nil {
		return function.Instance{}, fmt.Errorf("create %s: %w", id, rt.failCreate)
	}
	if _, ok := rt.reps[id]; ok {
		return function.Instance{}, fmt.Errorf("container %s exists", id)
	}
	rt.nextIP++
	rt.nextPid++
	in := function.Instance{
		ID:       id,
		Function: spec.Name,
		Hash:     spec.Hash(),
		IP:       netip.AddrFrom4([4]byte{10, 0, 0, byte(rt.nextIP)}),
		Pid:      1000 + rt.nextPid,
		Status:   function.TaskRunning,
		Created:  time.Now(),
		Cgroup:   "/ember/" + id,
	}
	rt.reps[id] = &fakeReplica{inst: in, image: spec.Image, lock: rt.newLock, ready: rt.newReady}
	rt.created = append(rt.created, createRec{Function: spec.Name, ID: id, Hash: in.Hash, At: in.Created})
	rt.note("Create", spec.Name)
	return in, nil
}

// CreateAt is Create at address ip, or at a new one while another replica
// holds ip, as host-local decides.
func (rt *fakeRuntime) CreateAt(ctx context.Context, spec function.Spec, id string, ip netip.Addr) (function.Instance, error) {
	in, err := rt.Create(ctx, spec, id)
	if err != nil {
		return in, err
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	for other, r := range rt.reps {
		if other != id && r.inst.IP == ip {
			return in, nil
		}
	}
	in.IP = ip
	rt.reps[id].inst.IP = ip
	return in, nil
}

func (rt *fakeRuntime) Restart(ctx context.Context, id string) (uint32, error) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	r := rt.reps[id]
	if r == nil {
		return 0, fmt.Errorf("restart %s: %w", id, function.ErrNotFound)
	}
	rt.nextPid++
	r.inst.Pid = 1000 + rt.nextPid
	r.inst.Status = function.TaskRunning
	rt.restarted = append(rt.restarted, restartRec{ID: id, At: time.Now()})
	return r.inst.Pid, nil
}

// Park stops the process and leaves a created, unstarted task.
func (rt *fakeRuntime) Park(ctx context.Context, id string, grace time.Duration) error {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	r := rt.reps[id]
	if r == nil {
		return fmt.Errorf("park %s: %w", id, function.ErrNotFound)
	}
	r.closeWaiters()
	r.inst.Status = function.TaskCreated
	r.inst.Pid = 0
	rt.parked = append(rt.parked, id)
	rt.note("Park", r.inst.Function)
	return nil
}

// Unpark starts a parked replica's task.
func (rt *fakeRuntime) Unpark(ctx context.Context, id string) (uint32, error) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	r := rt.reps[id]
	if r == nil || r.inst.Status != function.TaskCreated {
		return 0, fmt.Errorf("unpark %s: not parked", id)
	}
	rt.nextPid++
	r.inst.Pid = 1000 + rt.nextPid
	r.inst.Status = function.TaskRunning
	rt.unparked = append(rt.unparked, id)
	rt.note("Unpark", r.inst.Function)
	return r.inst.Pid, nil
}

func (rt *fakeRuntime) Freeze(ctx context.Context, cgroup string) error {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	r := rt.byCgroup(cgroup)
	rt.note("Freeze", r.function())
	if r == nil || r.inst.Status != function.TaskRunning {
		return fmt.Errorf("freeze %s: no running task", cgroup)
	}
	r.inst.Status = function.TaskPaused
	rt.frozen = append(rt.frozen, cgroup)
	return nil
}

func (rt *fakeRuntime) Thaw(cgroup string) error {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	r := rt.byCgroup(cgroup)
	rt.note("Thaw", r.function())
	if r == nil || r.inst.Status != function.TaskPaused {
		return fmt.Errorf("thaw %s: not frozen", cgroup)
	}
	r.inst.Status = function.TaskRunning
	rt.thawed = append(rt.thawed, cgroup)
	return nil
}

func (rt *fakeRuntime) byCgroup(cgroup string) *fakeReplica {
	for _, r := range rt.reps {
		if r.inst.Cgroup == cgroup {
			return r
		}
	}
	return nil
}

func (rt *fakeRuntime) Wait(ctx context.Context, id string) (<-chan function.Exit, error) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	r := rt.reps[id]
	rt.note("Wait", r.function())
	if r == nil {
		return nil, fmt.Errorf("wait %s: %w", id, function.ErrNotFound)
	}
	w := &fakeWaiter{ch: make(chan function.Exit, 1)}
	if code, ok := rt.crash[r.image]; ok && r.inst.Status == function.TaskRunning {
		r.inst.Status = function.TaskStopped
		r.log = append(r.log, rt.logTail...)
		w.ch <- function.Exit{Code: code, At: time.Now()}
		close(w.ch)
		w.done = true
		return w.ch, nil
	}
	r.waiters = append(r.waiters, w)
	// Like containerd's Wait, the channel ends with the context.
	context.AfterFunc(ctx, func() {
		rt.mu.Lock()
		defer rt.mu.Unlock()
		if !w.done {
			w.done = true
			close(w.ch)
		}
	})
	return w.ch, nil
}

func (rt *fakeRuntime) Remove(ctx context.Context, fn, id string, grace time.Duration) error {
	rt.mu.Lock()
	hook := rt.onRemove
	rt.mu.Unlock()
	if hook != nil {
		hook(fn, id)
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.failRemoves > 0 {
		rt.failRemoves--
		return fmt.Errorf("remove replica %s: cni del: injected failure", id)
	}
	rt.removed = append(rt.removed, id)
	if r := rt.reps[id]; r != nil {
		r.closeWaiters()
		delete(rt.reps, id)
	}
	return nil
}

func (rt *fakeRuntime) Replicas(ctx context.Context) ([]function.Instance, error) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	var out []function.Instance
	for _, r := range rt.reps {
		out = append(out, r.inst)
	}
	slices.SortFunc(out, func(a, b function.Instance) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// Sweep asks keep without holding mu, as the real one does: the
// controller calls the runtime with its own locks held.
func (rt *fakeRuntime) Sweep(ctx context.Context, keep func(id string) bool) error {
	rt.mu.Lock()
	rt.sweeps++
	if rt.failSweeps > 0 {
		rt.failSweeps--
		n := len(rt.reps)
		rt.mu.Unlock()
		return errors.Join(fmt.Errorf("sweep: injected failure (%d replicas)", n), errors.New("and another"))
	}
	ids := slices.Sorted(maps.Keys(rt.reps))
	rt.mu.Unlock()
	for _, id := range ids {
		if keep(id) {
			continue
		}
		rt.mu.Lock()
		if r := rt.reps[id]; r != nil {
			r.closeWaiters()
			delete(rt.reps, id)
			rt.swept = append(rt.swept, id)
		}
		rt.mu.Unlock()
	}
	return nil
}

func (rt *fakeRuntime) LockVisible(pid uint32) (bool, error) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	for _, r := range rt.reps {
		if r.inst.Pid == pid && (r.inst.Status == function.TaskRunning || r.inst.Status == function.TaskPaused) {
			rt.note("LockVisible", r.function())
			return r.lock, nil
		}
	}
	rt.note("LockVisible", "")
	return false, fmt.Errorf("pid %d: no such process", pid)
}

func (rt *fakeRuntime) ProbeLock(ctx context.Context, id string) (bool, error) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	r := rt.reps[id]
	rt.note("ProbeLock", r.function())
	if rt.probeErr != nil {
		return false, fmt.Errorf("probe %s: %w", id, rt.probeErr)
	}
	if r == nil || r.inst.Status != function.TaskRunning {
		return false, fmt.Errorf("probe %s: task not running", id)
	}
	return r.lock, nil
}

func (rt *fakeRuntime) LogTail(fn, id string, n int) []string {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	r := rt.reps[id]
	if r == nil {
		return nil
	}
	return slices.Clone(r.log[max(0, len(r.log)-n):])
}

// Usage reports 100 millicores (or a share of setCPU's total) and 10 MiB
// per known cgroup.
func (rt *fakeRuntime) Usage(cgroups []string) function.Usage {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	var u function.Usage
	known := 0
	for _, cg := range cgroups {
		if rt.byCgroup(cg) != nil {
			known++
		}
	}
	cpu := 100.0
	if rt.cpuTotal > 0 && known > 0 {
		cpu = rt.cpuTotal / float64(known)
	}
	for _, cg := range cgroups {
		if rt.byCgroup(cg) != nil {
			u.CPU += cpu
			u.MemoryBytes += 10 << 20
		}
	}
	return u
}

// dial is the Config.Dial of the tests: it succeeds for running replicas.
func (rt *fakeRuntime) dial(ctx context.Context, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	for _, r := range rt.reps {
		if r.inst.IP.String() == host {
			rt.note("Dial", r.function())
			break
		}
	}
	for _, r := range rt.reps {
		if r.inst.IP.String() == host && port == strconv.Itoa(8080) && r.inst.Status == function.TaskRunning {
			return nil
		}
	}
	return &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
}

// readyGet is the Config.ReadyGet of the tests: a running replica answers
// its readiness status on any path (a frozen one never answers); the call
// is journaled as "ReadyGet PATH".
func (rt *fakeRuntime) readyGet(ctx context.Context, addr, path string) (int, error) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	for _, r := range rt.reps {
		if r.inst.IP.String()+":8080" != addr {
			continue
		}
		rt.note("ReadyGet "+path, r.function())
		switch {
		case r.inst.Status == function.TaskPaused:
			rt.mu.Unlock()
			<-ctx.Done()
			rt.mu.Lock()
			return 0, ctx.Err()
		case r.inst.Status != function.TaskRunning || r.ready == 0:
			return 0, errors.New("connection refused")
		}
		return r.ready, nil
	}
	return 0, errors.New("no route to host")
}

// setReady sets the status replica id's readiness path answers.
func (rt *fakeRuntime) setReady(id string, status int) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	r := rt.reps[id]
	if r == nil {
		panic("setReady: no replica " + id)
	}
	r.ready = status
}

func (rt *fakeRuntime) setNewReady(status int) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.newReady = status
}

// calledAt lists when op was called for function fn.
func (rt *fakeRuntime) calledAt(op, fn string) []time.Time {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	var out []time.Time
	for _, c := range rt.journal {
		if c.Op == op && c.Function == fn {
			out = append(out, c.At)
		}
	}
	return out
}

// note records a call. Called with rt.mu held.
func (rt *fakeRuntime) note(op, fn string) {
	rt.journal = append(rt.journal, fakeCall{Op: op, Function: fn, At: time.Now()})
}

// count returns how many op calls were made for function fn ("" counts
// every function's).
func (rt *fakeRuntime) count(op, fn string) int {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	n := 0
	for _, c := range rt.journal {
		if c.Op == op && (fn == "" || c.Function == fn) {
			n++
		}
	}
	return n
}

// last returns when the latest op call for function fn was made.
func (rt *fakeRuntime) last(op, fn string) time.Time {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	for _, c := range slices.Backward(rt.journal) {
		if c.Op == op && c.Function == fn {
			return c.At
		}
	}
	return time.Time{}
}

// function is the function a replica belongs to; "" for none.
func (r *fakeReplica) function() string {
	if r == nil {
		return ""
	}
	return r.inst.Function
}

func (r *fakeReplica) closeWaiters() {
	for _, w := range r.waiters {
		if !w.done {
			w.done = true
			close(w.ch)
		}
	}
	r.waiters = nil
}

// exit ends replica id's process with code, as if it crashed.
func (rt *fakeRuntime) exit(id string, code uint32) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	r := rt.reps[id]
	if r == nil {
		panic("exit: no replica " + id)
	}
	r.inst.Status = function.TaskStopped
	r.log = append(r.log, rt.logTail...)
	for _, w := range r.waiters {
		if !w.done {
			w.done = true
			w.ch <- function.Exit{Code: code, At: time.Now()}
			close(w.ch)
		}
	}
	r.waiters = nil
}

// setLock creates or deletes replica id's /tmp/.lock.
func (rt *fakeRuntime) setLock(id string, ok bool) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	r := rt.reps[id]
	if r == nil {
		panic("setLock: no replica " + id)
	}
	r.lock = ok
}

func (rt *fakeRuntime) setProbeErr(err error) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.probeErr = err
}

func (rt *fakeRuntime) setOnRemove(hook func(fn, id string)) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.onRemove = hook
}

func (rt *fakeRuntime) setNewLock(ok bool) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.newLock = ok
}

// add puts a replica in place as if it had survived a daemon restart.
func (rt *fakeRuntime) add(in function.Instance) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.reps[in.ID] = &fakeReplica{inst: in, lock: true, ready: 200}
}

func (rt *fakeRuntime) createdFor(fn string) []createRec {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	var out []createRec
	for _, c := range rt.created {
		if c.Function == fn {
			out = append(out, c)
		}
	}
	return out
}

func (rt *fakeRuntime) restarts() []restartRec {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return slices.Clone(rt.restarted)
}

// calls returns what the pause/park verbs were called with.
func (rt *fakeRuntime) calls() (frozen, thawed, parked, unparked []string) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return slices.Clone(rt.frozen), slices.Clone(rt.thawed), slices.Clone(rt.parked), slices.Clone(rt.unparked)
}

func (rt *fakeRuntime) status(id string) function.TaskStatus {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if r := rt.reps[id]; r != nil {
		return r.inst.Status
	}
	return ""
}

func (rt *fakeRuntime) removedIDs() []string {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return slices.Clone(rt.removed)
}

func (rt *fakeRuntime) sweptIDs() []string {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return slices.Clone(rt.swept)
}

// live lists the IDs of the replicas that exist, sorted.
func (rt *fakeRuntime) live() []string {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return slices.Sorted(maps.Keys(rt.reps))
}

// fakeStore is an in-memory scale.Store.
type fakeStore struct {
	mu   sync.Mutex // guards below
	fns  map[string]function.Spec
	puts int
}

func newFakeStore(specs ...function.Spec) *fakeStore {
	s := &fakeStore{fns: map[string]function.Spec{}}
	for _, sp := range specs {
		s.fns[sp.Name] = sp.Clone()
	}
	return s
}

func (s *fakeStore) PutFunction(spec function.Spec) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fns[spec.Name] = spec.Clone()
	s.puts++
	return nil
}

func (s *fakeStore) Function(name string) (function.Spec, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sp, ok := s.fns[name]
	if !ok {
		return function.Spec{}, fmt.Errorf("function %s: %w", name, function.ErrNotFound)
	}
	return sp.Clone(), nil
}

func (s *fakeStore) Functions() ([]function.Spec, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]function.Spec, 0, len(s.fns))
	for _, name := range slices.Sorted(maps.Keys(s.fns)) {
		out = append(out, s.fns[name].Clone())
	}
	return out, nil
}

func (s *fakeStore) DeleteFunction(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.fns[name]; !ok {
		return fmt.Errorf("function %s: %w", name, function.ErrNotFound)
	}
	delete(s.fns, name)
	return nil
}

func (s *fakeStore) spec(name string) function.Spec {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fns[name].Clone()
}

func (s *fakeStore) names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.fns))
}

// die stops replica id's process without telling its waiters: the runtime's
// exit event is late, as containerd's can be by a second or more.
func (rt *fakeRuntime) die(id string) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.reps[id].inst.Status = function.TaskStopped
}

// has reports whether the replica exists.
func (rt *fakeRuntime) has(id string) bool {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.reps[id] != nil
}

func (rt *fakeRuntime) setFailCreate(err error) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.failCreate = err
}

// createAttempts lists when Create was called, failed or not.
func (rt *fakeRuntime) createAttempts() []time.Time {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return slices.Clone(rt.attempts)
}

// creating reports the Creates held by the gate now and at most.
func (rt *fakeRuntime) creating() (now, most int) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.inCreate, rt.maxInCre
}

func (rt *fakeRuntime) ProbeExec(ctx context.Context, id string, args []string) (bool, error) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	r := rt.reps[id]
	rt.note("ProbeExec", r.function())
	if r == nil || r.inst.Status != function.TaskRunning {
		return false, fmt.Errorf("exec in %s: task not running", id)
	}
	return rt.healthy, nil
}

func (rt *fakeRuntime) SetServiceHosts(m map[string]netip.Addr) error {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.hosts = maps.Clone(m)
	return nil
}

func (rt *fakeRuntime) serviceHosts() map[string]netip.Addr {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return maps.Clone(rt.hosts)
}

// fakeCounts is an in-memory scale.Counts.
type fakeCounts struct {
	mu     sync.Mutex // guards below
	totals map[string]uint64
	puts   int
}

var _ scale.Counts = (*fakeCounts)(nil)

func (s *fakeCounts) Invocations() (map[string]uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.totals), nil
}

func (s *fakeCounts) PutInvocations(m map[string]uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.totals == nil {
		s.totals = map[string]uint64{}
	}
	maps.Copy(s.totals, m)
	s.puts++
	return nil
}

func (s *fakeCounts) get(name string) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.totals[name]
}

// setCPU sets the millicores Usage reports for all replicas together.
func (rt *fakeRuntime) setCPU(total float64) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.cpuTotal = total
}
