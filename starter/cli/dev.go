package cli

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cutover/cutover/activities/report"
	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/activities/vault"
	"github.com/cutover/cutover/internal/devtools/devstack"
	"github.com/cutover/cutover/schema"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
)

func init() {
	register("dev up", "start a local stack: Temporal dev server (+UI), schema, a worker", runDevUp)
	register("dev down", "stop what 'dev up' started", runDevDown)
	register("dev status", "show what 'dev up' started and whether it runs", runDevStatus)
}

// devPaths are the files a local stack keeps under its state directory.
type devPaths struct {
	dir string
	out *output
}

func (p devPaths) file(name string) string { return filepath.Join(p.dir, name) }

func devFlags(e *Env, path string) (*devPaths, *bool, func([]string) error) {
	fs := newFlags(e, path)
	dir := fs.String("state-dir", ".cutover", "where the stack keeps its state, logs and pid files")
	quiet := fs.Bool("quiet", false, "print only errors")
	p := &devPaths{out: bindOutput(fs)}
	return p, quiet, func(args []string) error {
		if err := parse(fs, args, 0); err != nil {
			return err
		}
		abs, err := filepath.Abs(*dir)
		if err != nil {
			return err
		}
		p.dir = abs
		return nil
	}
}

func runDevUp(ctx context.Context, e *Env, args []string) error {
	fs := newFlags(e, "dev up")
	dir := fs.String("state-dir", ".cutover", "where the stack keeps its state, logs and pid files")
	temporalBin := fs.String("temporal", "bin/temporal", "temporal CLI binary (make tools installs it)")
	workerBin := fs.String("worker", "", "worker binary (default: cutover-worker next to this binary)")
	port := fs.Int("port", 7233, "Temporal frontend port")
	uiPort := fs.Int("ui-port", 8233, "Temporal Web UI port")
	httpPort := fs.Int("http-port", 0, "Temporal HTTP API port (default: port+10)")
	serverMetrics := fs.Int("server-metrics-port", 0, "Temporal server metrics port (default: port+20)")
	metrics := fs.String("metrics", "127.0.0.1:9464", "worker Prometheus endpoint")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	p := devPaths{dir: abs}
	use, err := resolveDevUp(e, fs, *port, *metrics, p.dir)
	if err != nil {
		return err
	}
	use.print(e.Stdout)
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		return err
	}

	// A vault key for the local stack, created once and kept with its state.
	keyFile := p.file("vault.key")
	key, err := os.ReadFile(keyFile)
	if err != nil {
		k, gerr := vault.GenerateKey()
		if gerr != nil {
			return gerr
		}
		if err := os.WriteFile(keyFile, []byte(k+"\n"), 0o600); err != nil {
			return err
		}
		key = []byte(k)
	}
	keys := strings.TrimSpace(string(key))
	if v := e.Getenv(vault.EnvKeys); v != "" {
		keys = v // the operator's own keys win
	}

	if *httpPort == 0 {
		*httpPort = use.port + 10
	}
	if *serverMetrics == 0 {
		*serverMetrics = use.port + 20
	}
	srv := devstack.TemporalServer{IP: use.ip, Port: use.port, HTTPPort: *httpPort, MetricsPort: *serverMetrics,
		UIPort: *uiPort, DBFile: p.file("temporal.db"), Namespace: "default"}
	if !use.local {
		srv.UIPort = 0 // not ours: its UI, if any, is wherever its operator put it
	}
	addr := net.JoinHostPort(srv.IP, strconv.Itoa(srv.Port))
	if _, alive := devstack.ReadPid(p.file("temporal.pid")); alive {
		fmt.Fprintf(e.Stdout, "temporal: already running (%s)\n", p.file("temporal.pid"))
	} else if portOpen(addr) {
		fmt.Fprintf(e.Stdout, "temporal: something already listens on %s; using it\n", addr)
	} else if !use.local {
		return usagef("%s %s does not answer, and dev up starts a Temporal dev server only on this machine "+
			"(a loopback address such as 127.0.0.1:7233)", use.temporal.from, addr)
	} else {
		if _, err := os.Stat(*temporalBin); err != nil {
			return fmt.Errorf("temporal CLI not found at %s: run 'make tools'", *temporalBin)
		}
		pid, err := devstack.Spawn(*temporalBin, srv.Args(), nil, p.file("temporal.log"), p.file("temporal.pid"))
		if err != nil {
			return err
		}
		fmt.Fprintf(e.Stdout, "temporal: started dev server pid %d, state in %s\n", pid, srv.DBFile)
	}
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if err := devstack.WaitTemporal(wctx, addr, "default"); err != nil {
		return fmt.Errorf("%w (see %s)", err, p.file("temporal.log"))
	}

	db, err := store.Open(ctx, databaseURL(e))
	if err != nil {
		return err
	}
	res, err := schema.Apply(ctx, db.Pool)
	db.Close()
	if err != nil {
		return err
	}
	fmt.Fprintf(e.Stdout, "postgres: schema at version %d in %s\n", res.Version, redactURL(databaseURL(e)))

	if _, alive := devstack.ReadPid(p.file("worker.pid")); alive {
		fmt.Fprintf(e.Stdout, "worker: already running (%s)\n", p.file("worker.pid"))
	} else {
		wb := *workerBin
		if wb == "" {
			self, err := os.Executable()
			if err != nil {
				return err
			}
			wb = filepath.Join(filepath.Dir(self), "cutover-worker")
		}
		env := []string{envTemporalAddress + "=" + addr, "TEMPORAL_NAMESPACE=default",
			"DATABASE_URL=" + databaseURL(e), dbmigrateapi.EnvTargetURL + "=" + e.Getenv(dbmigrateapi.EnvTargetURL),
			vault.EnvKeys + "=" + keys, envMetricsAddr + "=" + use.metrics.value,
			report.EnvDir + "=" + use.reports.value}
		pid, err := devstack.Spawn(wb, nil, env, p.file("worker.log"), p.file("worker.pid"))
		if err != nil {
			return err
		}
		if err := waitHTTP(wctx, "http://"+use.metrics.value+"/healthz"); err != nil {
			return fmt.Errorf("worker pid %d did not come up: %w (see %s)", pid, err, p.file("worker.log"))
		}
		fmt.Fprintf(e.Stdout, "worker: started pid %d, metrics on http://%s/metrics\n", pid, use.metrics.value)
	}
	fmt.Fprintf(e.Stdout, "\nTemporal UI:  %s\nTemporal:     %s (namespace default, task queue cutover)\nLogs:         %s\nReports:      %s\n",
		dash(srv.UIURL()), addr, p.dir, use.reports.value)
	return nil
}

func runDevDown(_ context.Context, e *Env, args []string) error {
	p, quiet, parseArgs := devFlags(e, "dev down")
	if err := parseArgs(args); err != nil {
		return err
	}
	// Worker first, so it finishes in-flight activities while Temporal is still there; the demo's
	// Dovecots (cutover demo) last.
	for _, name := range append([]string{"worker", "temporal"}, demoDovecots...) {
		if slices.Contains(demoDovecots, name) {
			if _, err := os.Stat(p.file(name + ".pid")); err != nil {
				continue // never started here
			}
			defer os.RemoveAll(demoDovecotRoot(p.dir)) // their mail and sockets, once stopped
		}
		stopped, err := devstack.StopPidFile(p.file(name+".pid"), 30*time.Second)
		if err != nil {
			return err
		}
		if !*quiet {
			if stopped {
				fmt.Fprintf(e.Stdout, "%s: stopped\n", name)
			} else {
				fmt.Fprintf(e.Stdout, "%s: not running\n", name)
			}
		}
	}
	return nil
}

func runDevStatus(_ context.Context, e *Env, args []string) error {
	p, _, parseArgs := devFlags(e, "dev status")
	if err := parseArgs(args); err != nil {
		return err
	}
	type component struct {
		Name    string `json:"name"`
		Running bool   `json:"running"`
		Pid     int    `json:"pid,omitempty"`
	}
	var all []component
	down := 0
	for _, name := range append([]string{"temporal", "worker"}, demoDovecots...) {
		if slices.Contains(demoDovecots, name) {
			if _, err := os.Stat(p.file(name + ".pid")); err != nil {
				continue // optional: only 'cutover demo' starts them
			}
		}
		pid, alive := devstack.ReadPid(p.file(name + ".pid"))
		c := component{Name: name, Running: alive}
		if alive {
			c.Pid = pid
		} else {
			down++
		}
		all = append(all, c)
	}
	for _, c := range all {
		switch {
		case p.out.json():
		case c.Running:
			fmt.Fprintf(e.Stdout, "%-13s running (pid %d)\n", c.Name+":", c.Pid)
		default:
			fmt.Fprintf(e.Stdout, "%-13s not running\n", c.Name+":")
		}
	}
	if p.out.json() {
		if err := writeJSON(e.Stdout, all); err != nil {
			return err
		}
	}
	if down > 0 {
		return fmt.Errorf("%d component(s) not running; 'make dev' starts them", down)
	}
	return nil
}

func portOpen(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func waitHTTP(ctx context.Context, url string) error {
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// redactURL drops a password from a connection URL before printing it.
func redactURL(u string) string {
	at := strings.LastIndex(u, "@")
	scheme := strings.Index(u, "://")
	if at < 0 || scheme < 0 || at < scheme {
		return u
	}
	creds := u[scheme+3 : at]
	if user, _, ok := strings.Cut(creds, ":"); ok {
		return u[:scheme+3] + user + ":***" + u[at:]
	}
	return u
}
