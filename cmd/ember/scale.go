package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/emberfaas/ember/api/wire"
	"github.com/emberfaas/ember/client"
)

type scaleOptions struct {
	Name               string
	Replicas, Min, Max *uint64
}

func newScaleCmd() *cobra.Command {
	var o scaleOptions
	var n, lo, hi uint64
	cmd := &cobra.Command{
		Use:   "scale NAME [--replicas N] [--min N] [--max N]",
		Short: "Set a function's replica count now, or the bounds the autoscaler keeps it in",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name = args[0]
			f := cmd.Flags()
			if f.Changed("replicas") {
				o.Replicas = &n
			}
			if f.Changed("min") {
				o.Min = &lo
			}
			if f.Changed("max") {
				o.Max = &hi
			}
			return runScale(cmd.Context(), clientFor(cmd), o, cmd.OutOrStdout())
		},
	}
	cmd.Flags().Uint64Var(&n, "replicas", 0, "replicas now (0 parks the function)")
	cmd.Flags().Uint64Var(&lo, "min", 0, "fewest replicas the autoscaler keeps")
	cmd.Flags().Uint64Var(&hi, "max", 0, "most replicas the autoscaler starts (--min N --max N pins N)")
	return cmd
}

// runScale scales and then says what the autoscaler will do with the
// count, which otherwise undoes a scale silently within a minute.
func runScale(ctx context.Context, c *client.Client, o scaleOptions, w io.Writer) error {
	switch {
	case o.Replicas == nil && o.Min == nil && o.Max == nil:
		return errors.New("give --replicas, --min or --max")
	case o.Min == nil && o.Max == nil:
		if err := c.Scale(ctx, o.Name, *o.Replicas); err != nil {
			return err
		}
	default:
		if err := c.SetBounds(ctx, o.Name, o.Replicas, o.Min, o.Max); err != nil {
			return err
		}
	}
	f, err := c.Describe(ctx, o.Name)
	if err != nil {
		return err
	}
	fmt.Fprintln(w, scaleMessage(o, f))
	return nil
}

func scaleMessage(o scaleOptions, f wire.FunctionStatus) string {
	var what string
	switch {
	case o.Replicas != nil && *o.Replicas == 0:
		what = fmt.Sprintf("Scaled %s to zero; the next request wakes it", o.Name)
	case o.Replicas != nil:
		what = fmt.Sprintf("Scaled %s to %d replicas", o.Name, *o.Replicas)
	default:
		what = fmt.Sprintf("Set %s's replicas between %d and %d", o.Name, f.MinReplicas, f.MaxReplicas)
	}
	switch {
	case !f.Autoscaling:
		return fmt.Sprintf("%s; autoscaling is off (min = max = %d), so it stays at %d.", what, f.MinReplicas, f.MinReplicas)
	case o.Replicas != nil && *o.Replicas > 0:
		return fmt.Sprintf("%s; autoscaling between %d and %d will move it with load — use --min/--max to pin.", what, f.MinReplicas, f.MaxReplicas)
	default:
		return fmt.Sprintf("%s; autoscaling between %d and %d moves it with load.", what, f.MinReplicas, f.MaxReplicas)
	}
}

func newRestartCmd() *cobra.Command {
	var wait bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "restart NAME",
		Short: "Replace a function's replicas one rolling update at a time (for apps that read secrets only at start)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRestart(cmd.Context(), clientFor(cmd), args[0], wait, timeout, cmd.OutOrStdout())
		},
	}
	cmd.Flags().BoolVar(&wait, "wait", true, "wait until a restarted replica is ready")
	cmd.Flags().DurationVar(&timeout, "timeout", 60*time.Second, "how long to wait for a restarted replica")
	return cmd
}

func runRestart(ctx context.Context, c *client.Client, name string, wait bool, timeout time.Duration, w io.Writer) error {
	var d time.Duration
	if wait {
		d = timeout
	}
	if err := c.Restart(ctx, name, d); err != nil {
		return err
	}
	if wait {
		fmt.Fprintf(w, "Restarted %s: ready; old replicas drain.\n", name)
	} else {
		fmt.Fprintf(w, "Restarting %s.\n", name)
	}
	return nil
}
