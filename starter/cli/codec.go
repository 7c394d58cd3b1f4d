package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/cutover/cutover/internal/codec"
)

func init() {
	register("codec-server", "serve the payload codec (CUTOVER_PAYLOAD_KEYS) for the Temporal UI and CLI", runCodecServer)
	register("codec genkey", "print a new random payload encryption key", runCodecGenkey)
}

func runCodecServer(ctx context.Context, e *Env, args []string) error {
	fs := newFlags(e, "codec-server")
	listen := fs.String("listen", "127.0.0.1:8081", "address to serve /encode and /decode on")
	origins := fs.String("cors-origins", "http://127.0.0.1:8233,http://localhost:8233", "comma-separated Temporal UI origins")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	c, err := codec.FromEnv(e.Getenv)
	if err != nil {
		return usageError{err.Error()}
	}
	if c == nil {
		return usagef("%s is not set: there is nothing to decode", codec.EnvKeys)
	}
	token := e.Getenv("CUTOVER_CODEC_TOKEN")
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: codec.Handler(c, token, strings.Split(*origins, ",")), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	fmt.Fprintf(e.Stdout, "codec server on http://%s (token required: %t); point the UI at it with --ui-codec-endpoint\n",
		ln.Addr(), token != "")
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func runCodecGenkey(_ context.Context, e *Env, args []string) error {
	fs := newFlags(e, "codec genkey")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	k, err := codec.GenerateKey()
	if err != nil {
		return err
	}
	fmt.Fprintln(e.Stdout, k)
	return nil
}
