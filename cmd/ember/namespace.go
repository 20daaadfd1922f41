package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/emberfaas/ember/api/wire"
	"github.com/emberfaas/ember/client"
	"github.com/emberfaas/ember/stack"
)

func newNamespaceCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "namespace",
		Aliases: []string{"ns"},
		Short:   "Manage function namespaces (openfaas-fn is the default)",
	}
	cmd.AddCommand(newNamespaceListCmd(), newNamespacePutCmd(false), newNamespacePutCmd(true),
		newNamespaceGetCmd(), newNamespaceRemoveCmd())
	return cmd
}

func newNamespaceListCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List namespaces",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(out); err != nil {
				return err
			}
			nss, err := clientFor(cmd).Namespaces(cmd.Context())
			if err != nil {
				return err
			}
			if out == "json" {
				return printJSON(cmd.OutOrStdout(), nss)
			}
			for _, ns := range nss {
				fmt.Fprintln(cmd.OutOrStdout(), ns)
			}
			return nil
		},
	}
	addOutput(cmd, &out)
	return cmd
}

func newNamespacePutCmd(update bool) *cobra.Command {
	var labels, annotations []string
	use, short := "create NAME", "Create a namespace"
	if update {
		use, short = "update NAME", "Replace a namespace's labels and annotations"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ns := wire.FunctionNamespace{Name: args[0]}
			var err error
			if ns.Labels, err = parseKV("label", labels); err != nil {
				return err
			}
			if ns.Annotations, err = parseKV("annotation", annotations); err != nil {
				return err
			}
			c := clientFor(cmd)
			verb := "Created"
			if update {
				err, verb = c.UpdateNamespace(cmd.Context(), ns), "Updated"
			} else {
				err = c.CreateNamespace(cmd.Context(), ns)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s namespace %s\n", verb, ns.Name)
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&labels, "label", "l", nil, "label KEY=VALUE (repeatable)")
	cmd.Flags().StringArrayVar(&annotations, "annotation", nil, "annotation KEY=VALUE (repeatable)")
	return cmd
}

func newNamespaceGetCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "get NAME",
		Short: "Show a namespace's labels and annotations",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(out); err != nil {
				return err
			}
			ns, err := clientFor(cmd).Namespace(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if out == "json" {
				return printJSON(cmd.OutOrStdout(), ns)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "Name:\t%s\n", ns.Name)
			fmt.Fprintf(tw, "Labels:\t%s\n", joinKV(ns.Labels))
			fmt.Fprintf(tw, "Annotations:\t%s\n", joinKV(ns.Annotations))
			return tw.Flush()
		},
	}
	addOutput(cmd, &out)
	return cmd
}

func joinKV(m map[string]string) string {
	if len(m) == 0 {
		return "-"
	}
	kv := make([]string, 0, len(m))
	for k, v := range m {
		kv = append(kv, k+"="+v)
	}
	sort.Strings(kv)
	return strings.Join(kv, ",")
}

func newNamespaceRemoveCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "rm NAME",
		Aliases: []string{"remove", "delete"},
		Short:   "Remove an empty namespace",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			err := clientFor(cmd).DeleteNamespace(cmd.Context(), args[0])
			var se *client.StatusError
			if errors.As(err, &se) && se.Code == 409 {
				// The daemon lists what is left in JSON; say it in words.
				if msg, ok := inUseMessage(se.Message); ok {
					return errors.New(msg)
				}
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Removed namespace %s\n", args[0])
			return nil
		},
	}
}

func inUseMessage(body string) (string, bool) {
	var u wire.NamespaceInUse
	if err := json.Unmarshal([]byte(body), &u); err != nil || u.Message == "" {
		return "", false
	}
	return u.Message, true
}

type exportOptions struct {
	File, Gateway string
}

func newExportCmd() *cobra.Command {
	var o exportOptions
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write a namespace's functions as a stack file for faas-cli deploy",
		Long: `Write the deployed functions of one namespace (-n, default openfaas-fn) as an
OpenFaaS stack file: images, fprocess, environment, secrets by name, labels,
annotations, limits, requests and a read-only root. faas-cli deploy -f takes it
to OpenFaaS on Kubernetes or faasd. Secret values are not exported: create the
secrets there first.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runExport(cmd.Context(), clientFor(cmd), o, cmd.OutOrStdout())
		},
	}
	addNamespace(cmd)
	cmd.Flags().StringVarP(&o.File, "output", "o", "", "file to write (default: standard output)")
	cmd.Flags().StringVar(&o.Gateway, "gateway", "http://127.0.0.1:8080", "provider.gateway written into the file")
	return cmd
}

func runExport(ctx context.Context, c *client.Client, o exportOptions, w io.Writer) error {
	fns, err := c.List(ctx)
	if err != nil {
		return err
	}
	out, err := stack.Export(fns, o.Gateway)
	if err != nil {
		return err
	}
	if o.File == "" {
		_, err = w.Write(out)
		return err
	}
	if err := os.WriteFile(o.File, out, 0o644); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	fmt.Fprintf(w, "Wrote %d functions to %s\n", len(fns), o.File)
	return nil
}
