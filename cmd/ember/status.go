package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/emberfaas/ember/api/wire"
)

func newStatusCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the daemon: version, uptime, containerd, network, functions and replicas",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runStatus(cmd.Context(), clientFor(cmd).Status, out, cmd.OutOrStdout())
		},
	}
	addOutput(cmd, &out)
	return cmd
}

func runStatus(ctx context.Context, fetch func(context.Context) (wire.SystemStatus, error), out string, w io.Writer) error {
	if err := checkOutput(out); err != nil {
		return err
	}
	st, err := fetch(ctx)
	if err != nil {
		return err
	}
	if out == "json" {
		return printJSON(w, st)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	up := time.Duration(st.UptimeSeconds) * time.Second
	fmt.Fprintf(tw, "Daemon:\t%s (%s), up %s since %s\n", st.Version, st.Commit, up, st.Started.Local().Format(time.RFC3339))
	ctr := st.Containerd.Version
	if st.Containerd.Error != "" {
		ctr = "not answering: " + st.Containerd.Error
	}
	fmt.Fprintf(tw, "Containerd:\t%s (%s, namespace %s)\n", ctr, st.Containerd.Socket, st.Containerd.Namespace)
	if st.BridgeGateway != "" {
		fmt.Fprintf(tw, "Network:\tbridge %s, subnet %s, host %s (functions and services reach the host there)\n", st.Bridge, st.Subnet, st.BridgeGateway)
	} else {
		fmt.Fprintf(tw, "Network:\tbridge %s, subnet %s\n", st.Bridge, st.Subnet)
	}
	listening := fmt.Sprintf("%s (gateway and API), socket %s (API)", st.Listen, st.Socket)
	if st.Pprof != "" {
		listening += ", pprof " + st.Pprof
	}
	fmt.Fprintf(tw, "Listening:\t%s\n", listening)
	if st.GatewayURL != "" {
		fmt.Fprintf(tw, "Gateway:\t%s/function/NAME\n", st.GatewayURL)
	}
	fmt.Fprintf(tw, "State dir:\t%s\n", st.StateDir)
	fmt.Fprintf(tw, "Functions:\t%s\n", formatCounts(st.Functions))
	if st.Services != nil {
		fmt.Fprintf(tw, "Services:\t%s\n", formatCounts(*st.Services))
	}
	fmt.Fprintf(tw, "Replicas:\t%s\n", formatCounts(st.Replicas))
	if c := st.Cleanup; c != nil && c.Pending > 0 {
		retry := ""
		if !c.RetryAt.IsZero() {
			retry = ", retrying at " + c.RetryAt.Local().Format(time.TimeOnly)
		}
		fmt.Fprintf(tw, "Cleanup:\t%d pending%s (%d failures since start): %s\n", c.Pending, retry, c.Failures, c.LastError)
	}
	if d := st.LogsDropped; d != nil {
		fmt.Fprintf(tw, "Logs dropped:\t%s\n", formatDrops(*d))
	}
	return tw.Flush()
}

// formatDrops renders "1200 lines (150 KiB) since 10:00:00, dropping now:
// echo 1000, api 200; last error: ...".
func formatDrops(d wire.LogDrops) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d lines (%d KiB)", d.Lines, d.Bytes>>10)
	if d.Dropping {
		fmt.Fprintf(&b, ", dropping since %s", d.Since.Local().Format(time.TimeOnly))
	} else if !d.Since.IsZero() {
		fmt.Fprintf(&b, ", last from %s", d.Since.Local().Format(time.TimeOnly))
	}
	fns := slices.SortedFunc(maps.Keys(d.ByFunction), func(a, b string) int {
		return cmp.Or(cmp.Compare(d.ByFunction[b], d.ByFunction[a]), strings.Compare(a, b))
	})
	for i, fn := range fns {
		sep := ", "
		if i == 0 {
			sep = ": "
		}
		fmt.Fprintf(&b, "%s%s %d", sep, fn, d.ByFunction[fn])
	}
	if d.LastError != "" {
		fmt.Fprintf(&b, "; last error: %s", d.LastError)
	}
	return b.String()
}

// stateRank orders states and phases: serving first, then on the way,
// then resting, then leaving; unknown ones after, alphabetically.
func stateRank(s string) int {
	i := slices.Index([]string{wire.PhaseActive, "ready", "starting", "unhealthy", "paused", "zero", "stopping", "exited"}, s)
	if i < 0 {
		return 1 << 10
	}
	return i
}

// formatCounts renders "3 (2 ready, 1 starting)".
func formatCounts(c wire.Counts) string {
	if c.Total == 0 {
		return "0"
	}
	states := slices.SortedFunc(maps.Keys(c.ByState), func(a, b string) int {
		return cmp.Or(cmp.Compare(stateRank(a), stateRank(b)), strings.Compare(a, b))
	})
	parts := make([]string, 0, len(states))
	for _, s := range states {
		parts = append(parts, fmt.Sprintf("%d %s", c.ByState[s], s))
	}
	return fmt.Sprintf("%d (%s)", c.Total, strings.Join(parts, ", "))
}
