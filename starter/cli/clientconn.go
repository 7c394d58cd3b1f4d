package cli

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/cutover/cutover/internal/codec"
	"github.com/cutover/cutover/starter/client"
)

// client connects the cutover Go client (starter/client) with the command's flags: the CLI
// drives migrations through the same package upstream services use.
func (t *temporalFlags) client(ctx context.Context) (*client.Client, error) {
	if _, err := codec.FromEnv(t.getenv); err != nil {
		return nil, usageError{err.Error()}
	}
	c, err := client.Dial(ctx, client.Options{Address: t.address, Namespace: t.namespace, TaskQueue: t.taskQueue,
		Getenv: t.getenv, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, fmt.Errorf("connect to Temporal at %s (is it running? try 'make dev'): %w", t.address, err)
	}
	return c, nil
}
