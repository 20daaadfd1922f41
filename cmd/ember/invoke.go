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
