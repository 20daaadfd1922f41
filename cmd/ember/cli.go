package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/emberfaas/ember/api/wire"
	"github.com/emberfaas/ember/client"
)

// Each command turns its flags into an options struct and calls a function
// that takes a client and writers, so the logic is testable without cobra.

// clientFor returns a client for --socket: the unix socket, or a daemon's
// http:// URL, for which the password comes from EMBER_PASSWORD (never a
// flag: flags show in ps).
func clientFor(cmd *cobra.Command) *client.Client {
	sock, _ := cmd.Flags().GetString("socket")
	c := client.New(sock)
	if pw := os.Getenv("EMBER_PASSWORD"); pw != "" && strings.Contains(sock, "://") {
		c.WithBasicAuth("admin", pw)
	}
	return c
}

func addOutput(cmd *cobra.Command, out *string) {
	cmd.Flags().StringVarP(out, "output", "o", "", `output format: "" (table) or json`)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printJSONLine(w io.Writer, v any) error {
	return json.NewEncoder(w).Encode(v)
}

func checkOutput(out string) error {
	if out != "" && out != "json" {
		return fmt.Errorf("--output %q: want json or nothing", out)
	}
	return nil
}

// parseKV parses repeated K=V flags.
func parseKV(flag string, vals []string) (map[string]string, error) {
	if len(vals) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(vals))
	for _, v := range vals {
		k, val, ok := strings.Cut(v, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--%s %q: want KEY=VALUE", flag, v)
		}
		m[k] = val
	}
	return m, nil
}

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
				return runDeployStack(cmd.Context(), clientFor(cmd), o.File, o.Filter, o.Wait, o.Timeout, o.Gateway, o.Output, cmd.OutOrStdout())
			}
			if o.Image == "" {
				return errors.New("--image is required (or give a stack file with -f)")
			}
			o.Name = args[0]
			return runDeploy(cmd.Context(), clientFor(cmd), o, cmd.OutOrStdout())
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
	f.StringVar(&o.Gateway, "gateway", "http://127.0.0.1:8080", "gateway URL printed for the function")
	addOutput(cmd, &o.Output)
	return cmd
}

func runDeploy(ctx context.Context, c *client.Client, o deployOptions, w io.Writer) error {
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
	url := strings.TrimSuffix(o.Gateway, "/") + "/function/" + o.Name
	if err := c.Deploy(ctx, d, wait); err != nil {
		return err
	}
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

// readyWait is how long to ask the daemon to wait for a ready replica: 0
// without --wait.
func readyWait(wait bool, timeout time.Duration) (time.Duration, error) {
	if !wait {
		return 0, nil
	}
	if timeout <= 0 {
		return 0, fmt.Errorf("--timeout %s: want a positive duration (or --wait=false)", timeout)
	}
	return timeout, nil
}

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

type invokeOptions struct {
	Name, Path, Method string
	Headers            []string
}

func newInvokeCmd() *cobra.Command {
	var o invokeOptions
	cmd := &cobra.Command{
		Use:   "invoke NAME",
		Short: "Call a function: body from stdin, response body to stdout",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name = args[0]
			return runInvoke(cmd.Context(), clientFor(cmd), o, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVar(&o.Path, "path", "/", "path (and query) below /function/NAME")
	cmd.Flags().StringVarP(&o.Method, "method", "m", "", "HTTP method (default POST with a body on stdin, else GET)")
	cmd.Flags().StringArrayVarP(&o.Headers, "header", "H", nil, "request header 'K: V' (repeatable)")
	return cmd
}

func runInvoke(ctx context.Context, c *client.Client, o invokeOptions, stdin io.Reader, stdout, stderr io.Writer) error {
	h := http.Header{}
	for _, kv := range o.Headers {
		k, v, ok := strings.Cut(kv, ":")
		if !ok || strings.TrimSpace(k) == "" {
			return fmt.Errorf("--header %q: want 'Key: Value'", kv)
		}
		h.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	var body io.Reader
	method := strings.ToUpper(o.Method)
	if f, ok := stdin.(*os.File); ok {
		// A terminal on stdin means no body; don't wait for one.
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice == 0 {
			body = f
		}
	} else if stdin != nil {
		body = stdin
	}
	if method == "" {
		method = http.MethodGet
		if body != nil {
			method = http.MethodPost
		}
	}
	resp, err := c.Invoke(ctx, o.Name, method, o.Path, h, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		fmt.Fprintf(stderr, "ember: %s answered %s: %s\n", o.Name, resp.Status, strings.TrimSpace(string(msg)))
		return &exitError{}
	}
	_, err = io.Copy(stdout, resp.Body)
	return err
}

func newImportCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "import FILE",
		Short: "Load a docker save or OCI archive into the daemon ('-' for stdin)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(out); err != nil {
				return err
			}
			var r io.Reader = cmd.InOrStdin()
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer f.Close()
				r = f
			}
			names, err := clientFor(cmd).Import(cmd.Context(), r)
			if err != nil {
				return err
			}
			if out == "json" {
				return printJSON(cmd.OutOrStdout(), names)
			}
			for _, n := range names {
				fmt.Fprintln(cmd.OutOrStdout(), n)
			}
			return nil
		},
	}
	addOutput(cmd, &out)
	return cmd
}

func newVersionCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the client's and the daemon's versions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(out); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			info, err := clientFor(cmd).Info(cmd.Context())
			var se *client.StatusError
			daemon := "unreachable"
			if err == nil {
				daemon = info.Version.Release + " (" + info.Version.SHA + ")"
			} else if errors.As(err, &se) {
				daemon = "error: " + se.Error()
			}
			if out == "json" {
				return printJSON(w, map[string]string{"client": version, "clientCommit": commit, "daemon": daemon})
			}
			fmt.Fprintf(w, "Client: %s (%s)\nDaemon: %s\n", version, commit, daemon)
			return nil
		},
	}
	addOutput(cmd, &out)
	return cmd
}
