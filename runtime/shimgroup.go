package runtime

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/cio"
	"github.com/containerd/containerd/errdefs"
)

// A function's replicas share one runc shim (see ShimGroupAnnotation). The
// shim ends when containerd deletes its last task, and containerd 1.6 has
// two races around that end, both of which surface as "ttrpc: closed"
// from a call the shim never answered:
//
//   - Deleting the last tasks of a group at once: one delete's shutdown
//     request finds the shim's task map empty while another delete is
//     still answering, and the shim exits before that answer is sent. The
//     delete was done; containerd then cleans the task up as that of a
//     dead shim.
//   - Creating a task while the group's last one is being deleted: the
//     new task is handed to the shim that is about to exit. Once it has,
//     the next attempt starts a new shim.
//
// Both are retried for a short while. A shim that really died (killed,
// crashed) fails the same way for every task it served; containerd reports
// each of them as exited, and the controller restarts them.

// shimRetries bounds the retries of one call over a shim's end; their
// delays add up to about a second.
const (
	shimRetries    = 10
	shimRetryDelay = 20 * time.Millisecond
)

// shimGone reports whether err says the shim serving a task went away
// during the call. containerd passes it as an Unknown gRPC status, so
// only its text tells it.
func shimGone(err error) bool {
	return err != nil && strings.Contains(err.Error(), "ttrpc: closed")
}

// retryShim calls f until it returns something other than a shim's end,
// or the retries are spent.
func retryShim(ctx context.Context, f func() error) error {
	delay := shimRetryDelay
	for i := 0; ; i++ {
		err := f()
		if !shimGone(err) || i == shimRetries {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(delay):
		}
		delay = min(2*delay, 200*time.Millisecond)
	}
}

// deleteTask deletes a task whose process has ended (or kills it first
// with opts). A task that is already gone is not an error.
func deleteTask(ctx context.Context, task containerd.Task, opts ...containerd.ProcessDeleteOpts) error {
	err := retryShim(ctx, func() error {
		_, err := task.Delete(ctx, opts...)
		return err
	})
	if err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete task %s: %w", task.ID(), err)
	}
	return nil
}

// createTask creates a task of c, not started, with creator's IO.
func createTask(ctx context.Context, c containerd.Container, creator cio.Creator) (containerd.Task, error) {
	var task containerd.Task
	err := retryShim(ctx, func() error {
		var err error
		task, err = c.NewTask(ctx, creator)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("create task: %w", err)
	}
	return task, nil
}
