package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/emberfaas/ember/client"
)

func newSecretCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "secret",
		Short: "Manage secrets mounted into functions at /var/openfaas/secrets/NAME",
	}
	cmd.AddCommand(newSecretPutCmd(false), newSecretPutCmd(true), newSecretListCmd(), newSecretRemoveCmd())
	return cmd
}

type secretOptions struct {
	Name, Literal, File string
	LiteralSet          bool
}

func newSecretPutCmd(update bool) *cobra.Command {
	var o secretOptions
	use, short := "create NAME", "Create a secret from --from-literal, --from-file or stdin"
	if update {
		use, short = "update NAME", "Replace a secret's value (running replicas see it at once)"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name = args[0]
			o.LiteralSet = cmd.Flags().Changed("from-literal")
			value, err := secretValue(o, cmd.InOrStdin())
			if err != nil {
				return err
			}
			c := clientFor(cmd)
			if update {
				err = c.UpdateSecret(cmd.Context(), o.Name, value)
			} else {
				err = c.CreateSecret(cmd.Context(), o.Name, value)
			}
			if err != nil {
				return err
			}
			verb := "Created"
			if update {
				verb = "Updated"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s secret %s.\n", verb, o.Name)
			return nil
		},
	}
	cmd.Flags().StringVar(&o.Literal, "from-literal", "", "the secret's value")
	cmd.Flags().StringVar(&o.File, "from-file", "", "a file holding the secret's value")
	return cmd
}

// secretValue takes the value from exactly one source; stdin when neither
// flag is given. A trailing newline from a terminal or `echo` is dropped
// from stdin, as faas-cli does.
func secretValue(o secretOptions, stdin io.Reader) ([]byte, error) {
	switch {
	case o.LiteralSet && o.File != "":
		return nil, errors.New("give --from-literal or --from-file, not both")
	case o.LiteralSet:
		return []byte(o.Literal), nil
	case o.File != "":
		return os.ReadFile(o.File)
	}
	data, err := io.ReadAll(io.LimitReader(stdin, 1<<20+1))
	if err != nil {
		return nil, err
	}
	if len(data) > 1<<20 {
		return nil, errors.New("secret larger than 1 MiB")
	}
	s := strings.TrimSuffix(string(data), "\n")
	if s == "" {
		return nil, errors.New("empty secret: give --from-literal, --from-file or a value on stdin")
	}
	return []byte(s), nil
}

func newSecretListCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List secrets (names only: values are never shown)",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runSecretList(cmd.Context(), clientFor(cmd), out, cmd.OutOrStdout())
		},
	}
	addOutput(cmd, &out)
	return cmd
}

func runSecretList(ctx context.Context, c *client.Client, out string, w io.Writer) error {
	if err := checkOutput(out); err != nil {
		return err
	}
	ss, err := c.Secrets(ctx)
	if err != nil {
		return err
	}
	if out == "json" {
		return printJSON(w, ss)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME")
	for _, s := range ss {
		fmt.Fprintln(tw, s.Name)
	}
	return tw.Flush()
}

func newSecretRemoveCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "rm NAME",
		Aliases: []string{"remove"},
		Short:   "Remove a secret",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := clientFor(cmd).DeleteSecret(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Removed secret %s.\n", args[0])
			return nil
		},
	}
}
