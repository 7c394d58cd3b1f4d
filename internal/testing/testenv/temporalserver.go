package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.temporal.io/sdk/client"

	"github.com/cutover/cutover/internal/temporalconn"
)

// TemporalServer is a real Temporal server (go.temporal.io/server, the build `make tools` puts in
// ./bin) on PostgreSQL persistence and SQL visibility, as production runs it: two private
// databases on the test PostgreSQL server, its schema set up by temporal-sql-tool, all four
// services in one process. Unlike the dev server it has no namespace until one is created
// (`cutover temporal setup`), and it may require mutual TLS (WithServerMTLS).
type TemporalServer struct {
	dir, bin string
	conn     temporalconn.Options
	dbs      []string
	base     string // the PostgreSQL server's URL
	proc     *proc
	mtls     *mtlsFiles
}

// TemporalServerVersion is the server release `make tools` builds.
const TemporalServerVersion = "v1.29.1"

type serverOptions struct{ mtls bool }

// TemporalServerOption configures StartTemporalServer.
type TemporalServerOption func(*serverOptions)

// WithServerMTLS makes the frontend require TLS with a client certificate signed by a CA
// generated for the server; Connection carries the client certificate.
func WithServerMTLS() TemporalServerOption { return func(o *serverOptions) { o.mtls = true } }

var sharedServers struct {
	sync.Mutex
	m map[bool]*TemporalServer
}

// SharedTemporalServer returns a server shared by the tests of the binary (one plain, one with
// mutual TLS), started on first use and stopped by Main. Tests use their own namespaces or
// task queues. It skips the test when the server build is missing (fails under CI=true).
func SharedTemporalServer(t testing.TB, opts ...TemporalServerOption) *TemporalServer {
	t.Helper()
	var o serverOptions
	for _, f := range opts {
		f(&o)
	}
	sharedServers.Lock()
	defer sharedServers.Unlock()
	if s := sharedServers.m[o.mtls]; s != nil {
		return s
	}
	s, err := newTemporalServer(o)
	if errors.As(err, new(unavailableError)) {
		Require(t, "Temporal server", err)
	}
	if err != nil {
		t.Fatalf("start Temporal server: %v", err)
	}
	if sharedServers.m == nil {
		sharedServers.m = map[bool]*TemporalServer{}
	}
	sharedServers.m[o.mtls] = s
	AtExit(s.Stop)
	return s
}

// temporalServerBins finds the server, its SQL tool and the PostgreSQL schema:
// $CUTOVER_TEMPORAL_SERVER_DIR, else <repo>/bin.
func temporalServerBins() (server, sqlTool, schema string, err error) {
	dir := os.Getenv("CUTOVER_TEMPORAL_SERVER_DIR")
	if dir == "" {
		root, err := RepoRoot()
		if err != nil {
			return "", "", "", err
		}
		dir = filepath.Join(root, "bin")
	}
	server, sqlTool = filepath.Join(dir, "temporal-server"), filepath.Join(dir, "temporal-sql-tool")
	schema = filepath.Join(dir, "temporal-schema", "postgresql", "v12")
	for _, p := range []string{server, sqlTool, schema} {
		if _, err := os.Stat(p); err != nil {
			return "", "", "", fmt.Errorf("Temporal server build not found (run `make tools`): %w", err)
		}
	}
	return server, sqlTool, schema, nil
}

func newTemporalServer(o serverOptions) (s *TemporalServer, err error) {
	bin, sqlTool, schemaDir, err := temporalServerBins()
	if err != nil {
		return nil, unavailableError{err}
	}
	s = &TemporalServer{bin: bin, base: postgresBaseURL()}
	if s.dir, err = os.MkdirTemp("", "cutover-temporal-server-"); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()
	pg, err := url.Parse(s.base)
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL URL: %w", err)
	}
	suffix := randomHex(6)
	for _, db := range []string{"temporal_t_" + suffix, "temporal_vis_t_" + suffix} {
		if err := createDatabase(s.base, db); err != nil {
			return nil, unavailableError{err}
		}
		s.dbs = append(s.dbs, db)
	}
	for i, sub := range []string{"temporal", "visibility"} {
		if err := s.setupSchema(sqlTool, pg, s.dbs[i], filepath.Join(schemaDir, sub, "versioned")); err != nil {
			return nil, err
		}
	}
	if o.mtls {
		f, err := writeMTLS(s.dir)
		if err != nil {
			return nil, err
		}
		s.mtls = &f
	}
	cfg, err := s.config(pg)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(s.dir, "config"), 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(s.dir, "config", "development.yaml"), []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(s.dir, "dynamicconfig.yaml"), []byte(serverDynamicConfig), 0o600); err != nil {
		return nil, err
	}
	if s.proc, err = startProc(s.logPath(), s.bin, "--root", s.dir, "--config", "config", "--env", "development",
		"--allow-no-auth", "start"); err != nil {
		return nil, err
	}
	if err := s.waitReady(); err != nil {
		return nil, fmt.Errorf("%w\nserver log (%s):\n%s", err, s.logPath(), s.LogTail())
	}
	return s, nil
}

func (s *TemporalServer) setupSchema(sqlTool string, pg *url.URL, db, versioned string) error {
	pw, _ := pg.User.Password()
	common := []string{"--plugin", "postgres12", "--endpoint", pg.Hostname(), "--port", orPort(pg.Port()),
		"--user", pg.User.Username(), "--password", pw, "--database", db}
	for _, cmd := range [][]string{{"setup-schema", "-v", "0.0"}, {"update-schema", "-d", versioned}} {
		out, err := exec.Command(sqlTool, append(common, cmd...)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("temporal-sql-tool %s on %s: %v\n%s", cmd[0], db, err, tailString(string(out), 4000))
		}
	}
	return nil
}

func orPort(p string) string {
	if p == "" {
		return "5432"
	}
	return p
}

func tailString(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func createDatabase(base, name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return fmt.Errorf("PostgreSQL: %w", err)
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	return err
}

// serverDynamicConfig: attributes registered by `cutover temporal setup` are seen by the very
// next call, as on a production cluster once its caches refreshed (the dev server does the same).
const serverDynamicConfig = `system.forceSearchAttributesCacheRefreshOnRead:
  - value: true
    constraints: {}
`

func (s *TemporalServer) config(pg *url.URL) (string, error) {
	ports := make([]int, 9)
	for i := range ports {
		var err error
		ports[i], err = freePort() // below 32768, as membership ports must be
		if err != nil {
			return "", err
		}
	}
	frontend := ports[4]
	s.conn = temporalconn.Options{Address: fmt.Sprintf("127.0.0.1:%d", frontend), Namespace: temporalconn.DefaultNamespace}
	pw, _ := pg.User.Password()
	store := func(db string) string {
		return fmt.Sprintf(`      sql:
        pluginName: postgres12
        databaseName: %q
        connectAddr: %q
        connectProtocol: tcp
        user: %q
        password: %q
        maxConns: 10
        maxIdleConns: 10
        maxConnLifetime: 1h
`, db, net.JoinHostPort(pg.Hostname(), orPort(pg.Port())), pg.User.Username(), pw)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `log:
  stdout: true
  level: warn
persistence:
  defaultStore: default
  visibilityStore: visibility
  numHistoryShards: 4
  datastores:
    default:
%s    visibility:
%s
global:
  membership:
    maxJoinDuration: 30s
    broadcastAddress: 127.0.0.1
`, store(s.dbs[0]), store(s.dbs[1]))
	if f := s.mtls; f != nil {
		fmt.Fprintf(&b, `  tls:
    frontend:
      server:
        certFile: %[1]q
        keyFile: %[2]q
        clientCaFiles: [%[3]q]
        requireClientAuth: true
      client:
        serverName: localhost
        rootCaFiles: [%[3]q]
    systemWorker:
      certFile: %[1]q
      keyFile: %[2]q
      client:
        serverName: localhost
        rootCaFiles: [%[3]q]
`, f.ServerCert, f.ServerKey, f.CA)
		s.conn.CertPath, s.conn.KeyPath, s.conn.CAPath, s.conn.ServerName = f.ClientCert, f.ClientKey, f.CA, "localhost"
	}
	fmt.Fprintf(&b, `services:
  frontend:
    rpc: {grpcPort: %d, membershipPort: %d, httpPort: %d, bindOnIP: 127.0.0.1}
  history:
    rpc: {grpcPort: %d, membershipPort: %d, bindOnIP: 127.0.0.1}
  matching:
    rpc: {grpcPort: %d, membershipPort: %d, bindOnIP: 127.0.0.1}
  worker:
    rpc: {grpcPort: %d, membershipPort: %d, bindOnIP: 127.0.0.1}
clusterMetadata:
  enableGlobalNamespace: false
  failoverVersionIncrement: 10
  masterClusterName: active
  currentClusterName: active
  clusterInformation:
    active:
      enabled: true
      initialFailoverVersion: 1
      rpcName: frontend
      rpcAddress: %q
dcRedirectionPolicy:
  policy: noop
dynamicConfigClient:
  filepath: %q
  pollInterval: 10s
`, frontend, ports[0], ports[5], ports[6], ports[1], ports[7], ports[2], ports[8], ports[3], s.conn.Address,
		filepath.Join(s.dir, "dynamicconfig.yaml"))
	return b.String(), nil
}

// waitReady polls the frontend until it answers a health check, or the process dies.
func (s *TemporalServer) waitReady() error {
	deadline := time.Now().Add(2 * temporalStartTimeout)
	var last error
	for time.Now().Before(deadline) {
		if exited, err := s.proc.exited(); exited {
			return fmt.Errorf("temporal server exited during startup: %v", err)
		}
		if last = s.probe(); last == nil {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("temporal server not ready after %s: %w", 2*temporalStartTimeout, last)
}

func (s *TemporalServer) probe() error {
	conn, err := net.DialTimeout("tcp", s.conn.Address, time.Second)
	if err != nil {
		return err
	}
	conn.Close()
	co, err := s.conn.ClientOptions()
	if err != nil {
		return err
	}
	co.Logger = quietSDKLogger{}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, err := client.DialContext(ctx, co)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.CheckHealth(ctx, &client.CheckHealthRequest{})
	return err
}

// Connection is how a client reaches the server (with the client certificate under mutual TLS),
// for namespace "default".
func (s *TemporalServer) Connection() temporalconn.Options { return s.conn }

// MTLS reports whether the frontend requires client certificates.
func (s *TemporalServer) MTLS() bool { return s.mtls != nil }

// CAPath is the CA of the server's certificate ("" without TLS).
func (s *TemporalServer) CAPath() string {
	if s.mtls == nil {
		return ""
	}
	return s.mtls.CA
}

func (s *TemporalServer) logPath() string { return filepath.Join(s.dir, "temporal-server.log") }

// LogTail is the end of the server's log.
func (s *TemporalServer) LogTail() string { return tailFile(s.logPath(), 16<<10) }

// Stop stops the server and drops its databases.
func (s *TemporalServer) Stop() {
	if s.proc != nil {
		s.proc.stop(temporalStopGrace)
		s.proc = nil
	}
	for _, db := range s.dbs {
		if err := dropDatabase(s.base, db); err != nil {
			fmt.Fprintf(os.Stderr, "drop Temporal database %s: %v\n", db, err)
		}
	}
	s.dbs = nil
	_ = os.RemoveAll(s.dir)
}

// quietSDKLogger drops the SDK's logs while probing a server that is still starting.
type quietSDKLogger struct{}

func (quietSDKLogger) Debug(string, ...any) {}
func (quietSDKLogger) Info(string, ...any)  {}
func (quietSDKLogger) Warn(string, ...any)  {}
func (quietSDKLogger) Error(string, ...any) {}
