// Package queue runs asynchronous function calls: POST /async-function/NAME
// stores the call in a NATS JetStream stream (an embedded server with its
// file store under the state dir, or an external one), and a worker per
// function replays it through the same handler that serves synchronous
// calls, so an async call acquires a replica, wakes a parked function and
// counts in the metrics like any other. Calls are retried with exponential
// backoff on 429/502/503/504, reported to their X-Callback-Url, and
// acknowledged only once that is done: delivery is at least once.
package queue
