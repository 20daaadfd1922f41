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
	"github.com/emberfaas/ember/function"
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
	fmt.Fprintf(tw, "Invocations:\t%.0f (%s over the last minute)\n", f.InvocationCount, formatRate(f.InvocationRate))
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
	fmt.Fprintln(tw, "REPLICA\tIP\tSTATE\tSTARTED\tREADY AFTER\tRESTARTS\tMEMORY\tCPU\tLAST EXIT")
	for _, r := range f.Instances {
		started := "-"
		if !r.Started.IsZero() {
			started = r.Started.Local().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", r.ID, dash(r.IP), r.State, started, readyAfter(r),
			r.Restarts, formatBytes(r.MemoryBytes), formatMillicores(r.CPU), dash(r.LastExit))
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

// readyAfter is how long a replica took to be ready: "850ms", "2.4s";
// "adopted" for one found running by this daemon, whose start-up was an
// earlier daemon's.
func readyAfter(r function.Replica) string {
	switch {
	case r.Adopted:
		return "adopted"
	case r.ReadyAfterSeconds <= 0:
		return "-"
	}
	d := time.Duration(r.ReadyAfterSeconds * float64(time.Second))
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(100 * time.Millisecond).String()
}

// formatBytes renders memory in binary units: "18.4 MiB".
func formatBytes(b float64) string {
	if b <= 0 {
		return "-"
	}
	return byteSize(b)
}

// byteSize renders a size in binary units: "0 B", "512 B", "1.5 KiB".
func byteSize(b float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for b >= 1024 && i < len(units)-1 {
		b /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%.0f B", b)
	}
	return fmt.Sprintf("%.1f %s", b, units[i])
}

// formatMillicores renders CPU as Kubernetes does: "250m" is a quarter
// of a core.
func formatMillicores(m float64) string {
	if m <= 0 {
		return "0m"
	}
	if m < 1 {
		return "<1m"
	}
	return fmt.Sprintf("%.0fm", m)
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
