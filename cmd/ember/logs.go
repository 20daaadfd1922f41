package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/emberfaas/ember/api/wire"
	"github.com/emberfaas/ember/client"
)

type logsOptions struct {
	Name     string
	Follow   bool
	Since    time.Duration
	Tail     int
	Instance string
	Output   string
}

func newLogsCmd() *cobra.Command {
	var o logsOptions
	cmd := &cobra.Command{
		Use:   "logs NAME",
		Short: "Print a function's logs, each line with its time and replica",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name = args[0]
			return runLogs(cmd.Context(), clientFor(cmd), o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&o.Follow, "follow", "f", false, "keep printing new lines")
	f.DurationVar(&o.Since, "since", 0, "only lines newer than this, such as 10m")
	f.IntVar(&o.Tail, "tail", 0, "only the last N lines")
	f.StringVar(&o.Instance, "instance", "", "only this replica")
	addOutput(cmd, &o.Output)
	return cmd
}

func runLogs(ctx context.Context, c *client.Client, o logsOptions, w io.Writer) error {
	if err := checkOutput(o.Output); err != nil {
		return err
	}
	lo := client.LogOptions{Follow: o.Follow, Tail: o.Tail, Instance: o.Instance}
	if o.Since > 0 {
		lo.Since = time.Now().Add(-o.Since)
	}
	return c.Logs(ctx, o.Name, lo, func(m wire.LogMessage) error {
		if o.Output == "json" {
			return printJSONLine(w, m)
		}
		_, err := fmt.Fprintf(w, "%s %s %s\n", m.Timestamp.Local().Format("2006-01-02T15:04:05.000Z07:00"), m.Instance, m.Text)
		return err
	})
}
