package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/emberfaas/ember/client"
)

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
