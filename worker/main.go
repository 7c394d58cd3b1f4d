// Command worker runs cutover's Temporal worker. Configuration is by environment (see the
// README's table); SIGTERM or SIGINT stops it gracefully. CUTOVER_CPU_PROFILE names a file the
// worker writes its CPU profile (pprof) to as it stops: where a migration's own time goes.
package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/cutover/cutover/internal/logging"
	"github.com/cutover/cutover/worker/workerapp"
)

func main() {
	logger := logging.FromEnv(os.Stderr)
	slog.SetDefault(logger)
	cfg, err := workerapp.ConfigFromEnv()
	if err != nil {
		logger.Error("bad configuration", "err", err)
		os.Exit(2)
	}
	cfg.Logger = logger
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if path := os.Getenv("CUTOVER_CPU_PROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			logger.Error("cpu profile", "err", err)
			os.Exit(2)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			logger.Error("cpu profile", "err", err)
			os.Exit(2)
		}
		defer func() { pprof.StopCPUProfile(); _ = f.Close() }()
	}
	if err := workerapp.Run(ctx, cfg, nil); err != nil {
		logger.Error("worker failed", "err", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}
