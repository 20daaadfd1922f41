// Command ember is the ember daemon and its command-line client.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	clog "github.com/containerd/log"
	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// version and commit are set at build time (-ldflags -X).
var (
	version = "dev"
	commit  = "unknown"
)

func main() {
	// The probe runs inside function containers, where it is exec'd for
	// every lock check: answer before any CLI set-up.
	if len(os.Args) == 3 && os.Args[1] == "probe" {
		os.Exit(probe(os.Args[2]))
	}
	// containerd's client logs through logrus at info level ("trying next
	// host" for every pull); ember reports what matters itself.
	clog.L.Logger.SetLevel(logrus.WarnLevel)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRoot()
	if err := root.ExecuteContext(ctx); err != nil {
		var quiet *exitError
		if !errors.As(err, &quiet) {
			fmt.Fprintln(os.Stderr, "ember:", err)
		}
		os.Exit(1)
	}
}

// probe exits 0 when path exists, 1 when it does not, 2 on other errors.
func probe(path string) int {
	_, err := os.Stat(path)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, os.ErrNotExist):
		return 1
	default:
		return 2
	}
}

// exitError makes the command exit 1 without printing more: the command
// already said what went wrong.
type exitError struct{}

func (*exitError) Error() string { return "" }

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "ember",
		Short:         "ember runs functions and stateless microservices on one host",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return flagsFromEnv(cmd.Flags())
		},
	}
	root.PersistentFlags().String("socket", "/run/ember/ember.sock", "the daemon's unix socket")
	root.AddCommand(newDaemonCmd(), newDeployCmd(), newListCmd(), newDescribeCmd(), newRemoveCmd(),
		newInvokeCmd(), newScaleCmd(), newRestartCmd(), newImportCmd(), newVersionCmd(), newSecretCmd(), newLogsCmd())
	root.AddCommand(newStatusCmd(), newServiceCmd())
	root.AddCommand(newQueueCmd())
	root.AddCommand(newNamespaceCmd(), newExportCmd())
	// faas-cli's -n on the commands that name functions or secrets.
	for _, c := range root.Commands() {
		switch c.Name() {
		case "deploy", "list", "describe", "remove", "invoke", "scale", "restart", "logs":
			addNamespace(c)
		case "secret":
			for _, sc := range c.Commands() {
				addNamespace(sc)
			}
		}
	}
	return root
}

// flagsFromEnv gives every flag not set on the command line the value of
// EMBER_<FLAG> (upper case, '-' as '_'), so systemd units and tests can
// configure ember through the environment.
func flagsFromEnv(fs *pflag.FlagSet) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed || err != nil {
			return
		}
		key := "EMBER_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		v, ok := os.LookupEnv(key)
		if !ok {
			return
		}
		if sv, isSlice := f.Value.(pflag.SliceValue); isSlice {
			err = sv.Replace(strings.Split(v, ","))
		} else {
			err = f.Value.Set(v)
		}
		if err != nil {
			err = fmt.Errorf("%s=%q: %w", key, v, err)
		}
	})
	return err
}
