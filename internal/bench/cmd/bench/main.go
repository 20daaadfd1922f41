// Command bench runs ember's benchmarks (`make bench`): see package
// internal/bench. It needs root, containerd, runc, the CNI plugins and the
// go tool, and runs from inside the module.
//
//	bench [-short] [-out FILE] [-only LIST] [-profile DIR] [-keep-logs]
//
// BENCH_SHORT=1 and BENCH_OUT=FILE in the environment set the same. The
// Markdown table goes to stdout, progress to stderr. ^C stops the run and
// cleans up; a second ^C abandons the clean-up.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/emberfaas/ember/internal/bench"
)

func main() {
	shortDefault, _ := strconv.ParseBool(os.Getenv("BENCH_SHORT"))
	var cfg bench.Config
	flag.BoolVar(&cfg.Short, "short", shortDefault, "tiny counts, no timing assertions (CI); env BENCH_SHORT")
	flag.StringVar(&cfg.Out, "out", os.Getenv("BENCH_OUT"), "also write the report as JSON to this file; env BENCH_OUT")
	flag.StringVar(&cfg.Only, "only", "", "run only these scenarios, comma-separated: gateway, wake, deploy, autoscale, autoscale-fixed, density, async")
	flag.StringVar(&cfg.ProfileDir, "profile", "", "save the daemons' heap, goroutine and CPU profiles of each scenario in this directory")
	flag.BoolVar(&cfg.KeepLogs, "keep-logs", false, "keep the daemons' and containerd's logs (always kept on failure)")
	flag.Parse()
	if flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sigs
		// From now on a second signal ends the process at once.
		signal.Stop(sigs)
		fmt.Fprintf(os.Stderr, "bench: %v: cleaning up (again to abandon the clean-up)\n", s)
		cancel()
	}()
	if err := bench.Run(ctx, cfg, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}
