package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/emberfaas/ember/api/wire"
)

func newQueueCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "queue",
		Short: "Show async calls per function: queued, in flight, waiting to be retried",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runQueue(cmd.Context(), clientFor(cmd).Queue, out, cmd.OutOrStdout())
		},
	}
	addOutput(cmd, &out)
	return cmd
}

func runQueue(ctx context.Context, fetch func(context.Context) ([]wire.AsyncQueue, error), out string, w io.Writer) error {
	if err := checkOutput(out); err != nil {
		return err
	}
	qs, err := fetch(ctx)
	if err != nil {
		return err
	}
	if out == "json" {
		return printJSON(w, qs)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FUNCTION\tQUEUED\tINFLIGHT\tRETRYING")
	for _, q := range qs {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\n", q.Function, q.Queued, q.InFlight, q.Retrying)
	}
	return tw.Flush()
}
