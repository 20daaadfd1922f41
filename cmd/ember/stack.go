package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/emberfaas/ember/client"
	"github.com/emberfaas/ember/stack"
)

// Stack files: `ember deploy -f stack.yml` and `ember remove -f stack.yml`
// act on the functions of an OpenFaaS stack file, as faas-cli does.

// stackArgs is the Args of a command that takes NAME or -f FILE.
func stackArgs(file, filter *string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		switch {
		case *file != "" && len(args) > 0:
			return fmt.Errorf("give NAME or -f %s, not both: the stack file names its functions", *file)
		case *file != "":
			return nil
		case *filter != "":
			return errors.New("--filter selects functions of a stack file: add -f FILE")
		}
		return cobra.ExactArgs(1)(cmd, args)
	}
}

// functionFlags are deploy's flags that describe one function; a stack
// file describes its functions itself, so they cannot be combined with -f.
var functionFlags = []string{"image", "env", "label", "annotation", "secret", "readonly", "memory-limit", "cpu-limit"}

func checkStackFlags(cmd *cobra.Command) error {
	for _, name := range functionFlags {
		if cmd.Flags().Changed(name) {
			return fmt.Errorf("--%s cannot be combined with -f: set it in the stack file", name)
		}
	}
	return nil
}

// stackResult is one function in `ember deploy -f ... -o json`.
type stackResult struct {
	Name  string `json:"name"`
	URL   string `json:"url"`
	Ready bool   `json:"ready"`
}

// runDeployStack deploys the functions of file that filter selects, in
// the file's order. Every selected function is checked before the first is
// sent; on the first failed deploy it stops and names the function.
func runDeployStack(ctx context.Context, c *client.Client, file, filter string, wait bool, timeout time.Duration, gateway, output string, w, progress io.Writer) error {
	if err := checkOutput(output); err != nil {
		return err
	}
	waitDur, err := readyWait(wait, timeout)
	if err != nil {
		return err
	}
	st, err := stack.Load(file, stack.LoadOptions{})
	if err != nil {
		return err
	}
	deps, err := st.Deployments(filter)
	if err != nil {
		return err
	}
	if len(deps) == 0 {
		return fmt.Errorf("%s: no functions to deploy", file)
	}
	gateway = printedGateway(ctx, c, gateway, st.Provider.Gateway)
	results := make([]stackResult, 0, len(deps))
	for i, d := range deps {
		if ns := c.FunctionNamespace(); ns != "" {
			d.Function.Namespace = ns // -n overrides namespace:, as in faas-cli
		}
		if err := deployShowing(ctx, c, d.Function, waitDur, output, progress); err != nil {
			return fmt.Errorf("deploy %s: %w%s", d.Name, err, notAttempted(deps[i+1:]))
		}
		ref := d.Name
		if d.Function.Namespace != "" {
			ref += "." + d.Function.Namespace
		}
		r := stackResult{Name: d.Name, URL: strings.TrimSuffix(gateway, "/") + "/function/" + ref, Ready: wait}
		results = append(results, r)
		if output == "json" {
			continue
		}
		if wait {
			fmt.Fprintf(w, "Deployed %s: ready.\nURL: %s\n", r.Name, r.URL)
		} else {
			fmt.Fprintf(w, "Deployed %s.\nURL: %s\n", r.Name, r.URL)
		}
	}
	if output == "json" {
		return printJSON(w, results)
	}
	return nil
}

// notAttempted tells the user which functions a failed stack deploy left
// alone.
func notAttempted(rest []stack.Deployment) string {
	if len(rest) == 0 {
		return ""
	}
	names := make([]string, len(rest))
	for i, d := range rest {
		names[i] = d.Name
	}
	return " (not attempted: " + strings.Join(names, ", ") + ")"
}

// runRemoveStack removes the functions of file that filter selects. Like
// faas-cli it goes on past a function that is not deployed, and past
// failures, so one bad function does not keep the others running; the
// failures are returned together.
func runRemoveStack(ctx context.Context, c *client.Client, file, filter string, w io.Writer) error {
	st, err := stack.Load(file, stack.LoadOptions{})
	if err != nil {
		return err
	}
	fns, err := st.Select(filter)
	if err != nil {
		return err
	}
	if len(fns) == 0 {
		return fmt.Errorf("%s: no functions to remove", file)
	}
	var errs []error
	for _, f := range fns {
		err := c.Remove(ctx, f.Name)
		var se *client.StatusError
		switch {
		case err == nil:
			fmt.Fprintf(w, "Removed %s.\n", f.Name)
		case errors.As(err, &se) && se.Code == http.StatusNotFound:
			fmt.Fprintf(w, "%s is not deployed.\n", f.Name)
		default:
			errs = append(errs, fmt.Errorf("remove %s: %w", f.Name, err))
		}
	}
	return errors.Join(errs...)
}
