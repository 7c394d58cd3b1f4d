package cli

import (
	"context"
	"flag"
	"fmt"
	"log/slog"

	"github.com/cutover/cutover/internal/codec"
	"github.com/cutover/cutover/starter/client"
)

// commandFlags is the prologue of every command that talks to Temporal: its flag set with the
// Temporal flags (--address, --namespace, --task-queue) and --output bound. The command adds
// its own flags, parses and checks its arguments, and only then connects with tf.client.
func commandFlags(e *Env, path string) (*flag.FlagSet, *temporalFlags, *output) {
	fs := newFlags(e, path)
	tf := &temporalFlags{}
	tf.bind(e, fs)
	return fs, tf, bindOutput(fs)
}

// client connects the cutover Go client (starter/client) with the command's flags: the CLI
// drives migrations through the same package upstream services use.
func (t *temporalFlags) client(ctx context.Context) (*client.Client, error) {
	if _, err := codec.FromEnv(t.getenv); err != nil {
		return nil, usageError{err.Error()}
	}
	// The SDK logs at info on connect; an operator's terminal only wants warnings.
	if err := t.conn.Validate(); err != nil {
		return nil, usageError{err.Error()}
	}
	conn := t.conn
	c, err := client.Dial(ctx, client.Options{Connection: &conn, TaskQueue: t.taskQueue,
		Getenv: t.getenv, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, fmt.Errorf("connect to Temporal at %s (is it running? try 'make dev'): %w", t.conn.Describe(), err)
	}
	return c, nil
}
