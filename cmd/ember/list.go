package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/emberfaas/ember/api/wire"
	"github.com/emberfaas/ember/function"
)

func newListCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List functions",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runList(cmd.Context(), clientFor(cmd).List, out, cmd.OutOrStdout())
		},
	}
	addOutput(cmd, &out)
	return cmd
}

func runList(ctx context.Context, fetch func(context.Context) ([]wire.FunctionStatus, error), out string, w io.Writer) error {
	if err := checkOutput(out); err != nil {
		return err
	}
	fns, err := fetch(ctx)
	if err != nil {
		return err
	}
	if out == "json" {
		return printJSON(w, fns)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tIMAGE\tSTATE\tINVOCATIONS\tRATE\tREPLICAS\tREADY")
	for _, f := range fns {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.0f\t%s\t%d\t%d\n", f.Name, f.Image, listState(f), f.InvocationCount, formatRate(f.InvocationRate), f.Replicas, f.AvailableReplicas)
	}
	return tw.Flush()
}

// formatRate renders requests per second over the last minute: "0",
// "0.4/s", "12/s". A tenth is the finest that a minute's window says.
func formatRate(r float64) string {
	switch {
	case r < 0.05:
		return "0"
	case r < 10:
		return fmt.Sprintf("%.1f/s", r)
	}
	return fmt.Sprintf("%.0f/s", r)
}

// States that list shows for a function.
const (
	listReady    = "ready"    // every desired replica is ready
	listStarting = "starting" // none ready yet, on the way
	listDegraded = "degraded" // fewer ready than desired, or some failing
	listPaused   = "paused"   // frozen when idle
	listZero     = "zero"     // parked: no process
)

// listState sums up a function in one word from its phase and replica
// counts. A failing replica (unhealthy, or exited and waiting for its
// restart) makes the function degraded even while others serve or start:
// that is what someone scanning the list needs to see. A daemon that does
// not report phase or replica states (older than these fields) still gets
// ready, starting or degraded from the OpenFaaS counts alone.
func listState(f wire.FunctionStatus) string {
	switch f.Phase {
	case "paused":
		return listPaused
	case "zero":
		return listZero
	}
	if f.Replicas == 0 {
		return listZero
	}
	if f.ReplicaStates[function.StateUnhealthy] > 0 || f.ReplicaStates[function.StateExited] > 0 {
		return listDegraded
	}
	switch {
	case f.AvailableReplicas == 0:
		return listStarting
	case f.AvailableReplicas < f.Replicas:
		return listDegraded
	}
	return listReady
}
