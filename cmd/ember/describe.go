package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/emberfaas/ember/client"
)

func newDescribeCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "describe NAME",
		Short: "Show a function and its replicas",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDescribe(cmd.Context(), clientFor(cmd), args[0], out, cmd.OutOrStdout())
		},
	}
	addOutput(cmd, &out)
	return cmd
}

func runDescribe(ctx context.Context, c *client.Client, name, out string, w io.Writer) error {
	if err := checkOutput(out); err != nil {
		return err
	}
	f, err := c.Describe(ctx, name)
	if err != nil {
		return err
	}
	if out == "json" {
		return printJSON(w, f)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Name:\t%s\n", f.Name)
	fmt.Fprintf(tw, "Image:\t%s\n", f.Image)
	fmt.Fprintf(tw, "Created:\t%s\n", f.CreatedAt.Local().Format(time.RFC3339))
	fmt.Fprintf(tw, "Replicas:\t%d desired, %d ready\n", f.Replicas, f.AvailableReplicas)
	fmt.Fprintf(tw, "Invocations:\t%.0f\n", f.InvocationCount)
	printMap(tw, "Environment", f.EnvVars)
	if f.Labels != nil {
		printMap(tw, "Labels", *f.Labels)
	}
	if f.Annotations != nil {
		printMap(tw, "Annotations", *f.Annotations)
	}
	if len(f.Secrets) > 0 {
		fmt.Fprintf(tw, "Secrets:\t%s\n", strings.Join(f.Secrets, ", "))
	}
	if f.Limits != nil {
		var lim []string
		if f.Limits.Memory != "" {
			lim = append(lim, "memory="+f.Limits.Memory)
		}
		if f.Limits.CPU != "" {
			lim = append(lim, "cpu="+f.Limits.CPU)
		}
		fmt.Fprintf(tw, "Limits:\t%s\n", strings.Join(lim, " "))
	}
	if f.ReadOnlyRootFilesystem {
		fmt.Fprintf(tw, "Root filesystem:\tread-only\n")
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REPLICA\tIP\tSTATE\tSTARTED\tRESTARTS\tLAST EXIT")
	for _, r := range f.Instances {
		started := "-"
		if !r.Started.IsZero() {
			started = r.Started.Local().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", r.ID, dash(r.IP), r.State, started, r.Restarts, dash(r.LastExit))
	}
	tw.Flush()
	if f.LastError != "" {
		fmt.Fprintf(w, "\nLast error: %s\n", f.LastError)
	}
	for _, r := range f.Instances {
		if r.Message != "" {
			fmt.Fprintf(w, "\n%s: %s\n", r.ID, r.Message)
		}
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func printMap(w io.Writer, title string, m map[string]string) {
	if len(m) == 0 {
		return
	}
	fmt.Fprintf(w, "%s:\t\n", title)
	for k, v := range m {
		fmt.Fprintf(w, "  %s\t%s\n", k, v)
	}
}
