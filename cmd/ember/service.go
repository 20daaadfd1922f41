package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/emberfaas/ember/api/wire"
	"github.com/emberfaas/ember/client"
	"github.com/emberfaas/ember/compose"
)

func newServiceCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "service",
		Short: "Run services (databases and such) from a compose file beside the functions",
	}
	cmd.AddCommand(newServiceUpCmd(), newServiceLsCmd(), newServiceLogsCmd(), newServiceDownCmd(), newServiceRestartCmd())
	return cmd
}

type serviceUpOptions struct {
	File string
}

func newServiceUpCmd() *cobra.Command {
	var o serviceUpOptions
	cmd := &cobra.Command{
		Use:   "up -f compose.yaml",
		Short: "Create or update the file's services; unchanged ones keep running",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runServiceUp(cmd.Context(), clientFor(cmd), o, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVarP(&o.File, "file", "f", "compose.yaml", "compose file")
	return cmd
}

func environ() map[string]string {
	env := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	return env
}

func runServiceUp(ctx context.Context, c *client.Client, o serviceUpOptions, w io.Writer) error {
	res, err := upFile(ctx, c, o.File)
	if err != nil {
		return err
	}
	for _, r := range res {
		fmt.Fprintf(w, "%s: %s\n", r.Name, r.Action)
	}
	return nil
}

// upFile brings up the services of the compose file at path.
func upFile(ctx context.Context, c *client.Client, path string) ([]wire.ServiceResult, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	specs, err := compose.Load(ctx, compose.File{Name: filepath.Base(path), Content: data, Dir: filepath.Dir(abs), Env: environ()})
	if err != nil {
		return nil, err
	}
	return c.ServicesUp(ctx, wire.ServicesUp{Services: specs})
}

func newServiceLsCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List services",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runServiceLs(cmd.Context(), clientFor(cmd), output, cmd.OutOrStdout())
		},
	}
	addOutput(cmd, &output)
	return cmd
}

func runServiceLs(ctx context.Context, c *client.Client, output string, w io.Writer) error {
	if err := checkOutput(output); err != nil {
		return err
	}
	svcs, err := c.Services(ctx)
	if err != nil {
		return err
	}
	if output == "json" {
		return printJSON(w, svcs)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tIMAGE\tSTATE\tIP\tPORTS\tRESTARTS")
	for _, s := range svcs {
		state, ip, restarts := "none", "", 0
		if len(s.Status.Replicas) > 0 {
			r := s.Status.Replicas[0]
			state, ip, restarts = string(r.State), r.IP, r.Restarts
		}
		var ports []string
		if s.Spec.Service != nil {
			for _, p := range s.Spec.Service.Ports {
				ports = append(ports, fmt.Sprintf("%s:%d->%d", p.HostIP, p.HostPort, p.Port))
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\n", s.Spec.Name, s.Spec.Image, state, ip, strings.Join(ports, ","), restarts)
	}
	return tw.Flush()
}

func newServiceLogsCmd() *cobra.Command {
	cmd := newLogsCmd()
	cmd.Short = "Print a service's logs"
	return cmd
}

func newServiceRestartCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "restart NAME",
		Short: "Restart a service: its process stops, then a new one starts on the same volumes",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := clientFor(cmd).ServiceRestart(cmd.Context(), args[0]); err != nil {
				return err
			}
			// The same "NAME: what happened" line as up and down print.
			fmt.Fprintf(cmd.OutOrStdout(), "%s: restarted\n", args[0])
			return nil
		},
	}
}

type serviceDownOptions struct {
	Names   []string
	Volumes bool
}

func newServiceDownCmd() *cobra.Command {
	var o serviceDownOptions
	cmd := &cobra.Command{
		Use:   "down [NAME...] [--volumes]",
		Short: "Remove services (all without a name); named volumes stay unless --volumes",
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Names = args
			return runServiceDown(cmd.Context(), clientFor(cmd), o, cmd.OutOrStdout())
		},
	}
	cmd.Flags().BoolVar(&o.Volumes, "volumes", false, "also remove the services' named volumes and their data")
	return cmd
}

func runServiceDown(ctx context.Context, c *client.Client, o serviceDownOptions, w io.Writer) error {
	names := o.Names
	if len(names) == 0 {
		svcs, err := c.Services(ctx)
		if err != nil {
			return err
		}
		for _, s := range svcs {
			names = append(names, s.Spec.Name)
		}
	}
	var errs []error
	for _, n := range names {
		if err := c.ServiceDown(ctx, n, o.Volumes); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", n, err))
			continue
		}
		fmt.Fprintf(w, "%s: removed\n", n)
	}
	return errors.Join(errs...)
}
