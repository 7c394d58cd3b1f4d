// Command worker runs cutover's Temporal worker. Configuration is by environment (see the
// README's table); SIGTERM or SIGINT stops it gracefully.
package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
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
	if err := workerapp.Run(ctx, cfg, nil); err != nil {
		logger.Error("worker failed", "err", err)
		os.Exit(1)
	}
}
