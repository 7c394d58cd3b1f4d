// Command cutover is the operator and upstream-service command line: it applies the schema,
// stores credentials in the vault and starts, signals, queries and watches migrations.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/cutover/cutover/starter/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := cli.Main(ctx, os.Args[1:], &cli.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv})
	stop()
	os.Exit(code)
}
