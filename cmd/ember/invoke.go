package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/emberfaas/ember/client"
)

type invokeOptions struct {
	Name, Path, Method string
	Headers            []string
	Async              bool
	Callback           string
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
	cmd.Flags().BoolVar(&o.Async, "async", false, "queue the call (POST /async-function/NAME) and print its call ID instead of waiting for the answer")
	cmd.Flags().StringVar(&o.Callback, "callback", "", "with --async: URL that receives the function's answer (X-Callback-Url)")
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
	if o.Callback != "" {
		if !o.Async {
			return fmt.Errorf("--callback needs --async")
		}
		h.Set("X-Callback-Url", o.Callback)
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
		if body != nil || o.Async {
			method = http.MethodPost
		}
	}
	if o.Async {
		if method != http.MethodPost {
			return fmt.Errorf("--async calls are POST, not %s", method)
		}
		return runInvokeAsync(ctx, c, o, h, body, stdout, stderr)
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

// runInvokeAsync queues the call and prints its call ID.
func runInvokeAsync(ctx context.Context, c *client.Client, o invokeOptions, h http.Header, body io.Reader, stdout, stderr io.Writer) error {
	if body == nil {
		body = http.NoBody
	}
	resp, err := c.InvokeAsync(ctx, o.Name, o.Path, h, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		fmt.Fprintf(stderr, "ember: %s answered %s: %s\n", o.Name, resp.Status, strings.TrimSpace(string(msg)))
		return &exitError{}
	}
	fmt.Fprintln(stdout, resp.Header.Get("X-Call-Id"))
	return nil
}
