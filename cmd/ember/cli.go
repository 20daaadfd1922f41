package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/emberfaas/ember/client"
)

// Each command turns its flags into an options struct and calls a function
// that takes a client and writers, so the logic is testable without cobra.
// This file holds what the commands share; each group has a file of its
// own.

// clientFor returns a client for --socket: the unix socket, or a daemon's
// http:// URL, for which the password comes from EMBER_PASSWORD (never a
// flag: flags show in ps).
func clientFor(cmd *cobra.Command) *client.Client {
	sock, _ := cmd.Flags().GetString("socket")
	c := client.New(sock)
	if pw := os.Getenv("EMBER_PASSWORD"); pw != "" && strings.Contains(sock, "://") {
		c.WithBasicAuth("admin", pw)
	}
	// Only commands given addNamespace have the flag; the daemon's
	// --namespace is containerd's and never reaches here.
	if ns, err := cmd.Flags().GetString("namespace"); err == nil && ns != "" {
		c.WithNamespace(ns)
	}
	return c
}

// addNamespace gives a command faas-cli's -n/--namespace.
func addNamespace(cmd *cobra.Command) {
	cmd.Flags().StringP("namespace", "n", "", "function namespace (default openfaas-fn)")
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
