package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/emberfaas/ember/api/wire"
	"github.com/emberfaas/ember/client"
	"github.com/emberfaas/ember/function"
)

type deployOptions struct {
	Name        string
	Image       string
	Env         []string
	Labels      []string
	Annotations []string
	Secrets     []string
	ReadOnly    bool
	Memory, CPU string
	Wait        bool
	Timeout     time.Duration
	Gateway     string
	Output      string
	// File is a stack file (-f); Filter selects its functions.
	File, Filter string
}

func newDeployCmd() *cobra.Command {
	var o deployOptions
	cmd := &cobra.Command{
		Use:   "deploy (NAME --image IMAGE | -f STACK.yml [--filter GLOB])",
		Short: "Create or update functions and wait until they are ready",
		Args:  stackArgs(&o.File, &o.Filter),
		RunE: func(cmd *cobra.Command, args []string) error {
			// Again: flagsFromEnv may have set -f after Args ran.
			if err := stackArgs(&o.File, &o.Filter)(cmd, args); err != nil {
				return err
			}
			if o.File != "" {
				if err := checkStackFlags(cmd); err != nil {
					return err
				}
				return runDeployStack(cmd.Context(), clientFor(cmd), o.File, o.Filter, o.Wait, o.Timeout, o.Gateway, o.Output, cmd.OutOrStdout(), cmd.ErrOrStderr())
			}
			if o.Image == "" {
				return errors.New("--image is required (or give a stack file with -f)")
			}
			o.Name = args[0]
			return runDeploy(cmd.Context(), clientFor(cmd), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Image, "image", "", "image reference (required without -f)")
	f.StringVarP(&o.File, "yaml", "f", "", "deploy the functions of this OpenFaaS stack file")
	f.StringVar(&o.Filter, "filter", "", "with -f, only functions whose names match this glob")
	f.StringArrayVarP(&o.Env, "env", "e", nil, "environment variable KEY=VALUE (repeatable)")
	f.StringArrayVarP(&o.Labels, "label", "l", nil, "label KEY=VALUE (repeatable)")
	f.StringArrayVar(&o.Annotations, "annotation", nil, "annotation KEY=VALUE (repeatable)")
	f.StringArrayVar(&o.Secrets, "secret", nil, "secret to mount (repeatable)")
	f.BoolVar(&o.ReadOnly, "readonly", false, "read-only root filesystem (with a writable /tmp)")
	f.StringVar(&o.Memory, "memory-limit", "", "memory limit, such as 128Mi")
	f.StringVar(&o.CPU, "cpu-limit", "", "CPU limit, such as 500m")
	f.BoolVar(&o.Wait, "wait", true, "wait until a replica is ready")
	f.DurationVar(&o.Timeout, "timeout", 60*time.Second, "how long to wait for a ready replica")
	f.StringVar(&o.Gateway, "gateway", "", "gateway URL printed for the function (default: the stack's provider.gateway, else the address the daemon serves)")
	addOutput(cmd, &o.Output)
	return cmd
}

// runDeploy deploys one function and prints its URL on w; progress (the
// pull, the wait) goes to progress, unless the output is JSON.
func runDeploy(ctx context.Context, c *client.Client, o deployOptions, w, progress io.Writer) error {
	if err := checkOutput(o.Output); err != nil {
		return err
	}
	d := wire.FunctionDeployment{Service: o.Name, Image: o.Image, Secrets: o.Secrets, ReadOnlyRootFilesystem: o.ReadOnly}
	var err error
	if d.EnvVars, err = parseKV("env", o.Env); err != nil {
		return err
	}
	labels, err := parseKV("label", o.Labels)
	if err != nil {
		return err
	}
	annotations, err := parseKV("annotation", o.Annotations)
	if err != nil {
		return err
	}
	if labels != nil {
		d.Labels = &labels
	}
	if annotations != nil {
		d.Annotations = &annotations
	}
	if o.Memory != "" || o.CPU != "" {
		d.Limits = &wire.FunctionResources{Memory: o.Memory, CPU: o.CPU}
	}
	// The daemon's own check, so a typo is reported before anything is
	// sent, in the same words as the API would use.
	if err := d.Spec().Validate(); err != nil {
		return err
	}
	wait, err := readyWait(o.Wait, o.Timeout)
	if err != nil {
		return err
	}
	ref := o.Name
	if ns := c.FunctionNamespace(); ns != "" && ns != function.DefaultNamespace {
		ref += "." + ns
	}
	if err := deployShowing(ctx, c, d, wait, o.Output, progress); err != nil {
		return err
	}
	url := strings.TrimSuffix(printedGateway(ctx, c, o.Gateway, ""), "/") + "/function/" + ref
	if o.Output == "json" {
		return printJSON(w, map[string]any{"name": o.Name, "url": url, "ready": o.Wait})
	}
	if o.Wait {
		fmt.Fprintf(w, "Deployed %s: ready.\nURL: %s\n", o.Name, url)
	} else {
		fmt.Fprintf(w, "Deployed %s.\nURL: %s\n", o.Name, url)
	}
	return nil
}

// deployShowing deploys d, showing its progress on w unless the output
// is JSON, where nothing but the JSON is written.
func deployShowing(ctx context.Context, c *client.Client, d wire.FunctionDeployment, wait time.Duration, output string, w io.Writer) error {
	if output == "json" {
		return c.Deploy(ctx, d, wait)
	}
	p := newDeployProgress(w, d.Service)
	return c.DeployFollow(ctx, d, wait, func(ev wire.DeployEvent) {
		p.event(ev)
		if ev.Stage == wire.StageDeployed && wait > 0 {
			p.waiting()
		}
	})
}

// fallbackGateway is printed when the daemon does not say where it serves.
const fallbackGateway = "http://127.0.0.1:8080"

// printedGateway is the base of the URL printed for a deployed function:
// --gateway when given, then the stack file's provider.gateway (as
// faas-cli prints), then the address the daemon says it serves.
func printedGateway(ctx context.Context, c *client.Client, flag, stackGateway string) string {
	switch {
	case flag != "":
		return flag
	case stackGateway != "":
		return stackGateway
	}
	if st, err := c.Status(ctx); err == nil && st.GatewayURL != "" {
		return st.GatewayURL
	}
	return fallbackGateway
}

func newRemoveCmd() *cobra.Command {
	var file, filter string
	cmd := &cobra.Command{
		Use:     "remove (NAME | -f STACK.yml [--filter GLOB])",
		Aliases: []string{"rm"},
		Short:   "Remove functions; returns when their replicas are gone",
		Args:    stackArgs(&file, &filter),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := stackArgs(&file, &filter)(cmd, args); err != nil {
				return err
			}
			if file != "" {
				return runRemoveStack(cmd.Context(), clientFor(cmd), file, filter, cmd.OutOrStdout())
			}
			if err := clientFor(cmd).Remove(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Removed %s.\n", args[0])
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "yaml", "f", "", "remove the functions of this OpenFaaS stack file")
	cmd.Flags().StringVar(&filter, "filter", "", "with -f, only functions whose names match this glob")
	return cmd
}
