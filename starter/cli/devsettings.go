package cli

import (
	"flag"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"

	"github.com/cutover/cutover/activities/report"
)

// Environment variables dev up honours (the worker and the CLI read the same ones).
const (
	envTemporalAddress = "TEMPORAL_ADDRESS"
	envMetricsAddr     = "CUTOVER_METRICS_ADDR"
)

// devSetting is a value dev up uses and where it came from: a flag, the environment or the
// default.
type devSetting struct {
	name, value, from string
}

// devUpSettings are what dev up runs with.
type devUpSettings struct {
	temporal devSetting // the frontend address the worker and the CLI use
	ip       string     // the dev server's listen address, when dev up starts one
	port     int
	local    bool // dev up may start a dev server there (a loopback address)
	metrics  devSetting
	reports  devSetting
}

// resolveDevUp picks each setting: a flag given on the command line wins, then the
// environment, then the default. A TEMPORAL_ADDRESS on another machine is used as it is:
// dev up starts a dev server only on a loopback address.
func resolveDevUp(e *Env, fs *flag.FlagSet, port int, metrics, stateDir string) (devUpSettings, error) {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	s := devUpSettings{ip: "127.0.0.1", port: port, local: true}
	s.temporal = devSetting{"Temporal", net.JoinHostPort(s.ip, strconv.Itoa(port)), "default"}
	if set["port"] {
		s.temporal.from = "--port"
	} else if addr := e.Getenv(envTemporalAddress); addr != "" {
		host, p, err := net.SplitHostPort(addr)
		n, perr := strconv.Atoi(p)
		if err != nil || perr != nil || n <= 0 || n > 65535 {
			return s, usagef("%s=%q: want HOST:PORT", envTemporalAddress, addr)
		}
		if host == "localhost" {
			host = "127.0.0.1"
		}
		ip := net.ParseIP(host)
		s.local = ip != nil && ip.To4() != nil && ip.IsLoopback()
		s.ip, s.port = host, n
		s.temporal = devSetting{"Temporal", addr, envTemporalAddress}
	}
	s.metrics = devSetting{"worker metrics", metrics, "default"}
	if set["metrics"] {
		s.metrics.from = "--metrics"
	} else if v := e.Getenv(envMetricsAddr); v != "" {
		s.metrics = devSetting{"worker metrics", v, envMetricsAddr}
	}
	s.reports = devSetting{"reports", filepath.Join(stateDir, "reports"), "default"}
	if v := e.Getenv(report.EnvDir); v != "" {
		s.reports = devSetting{"reports", report.DirFromEnv(e.Getenv), report.EnvDir}
	}
	return s, nil
}

// print says what dev up uses and where each value came from.
func (s devUpSettings) print(w io.Writer) {
	for _, v := range []devSetting{s.temporal, s.metrics, s.reports} {
		fmt.Fprintf(w, "using %-15s %s (%s)\n", v.name+":", v.value, v.from)
	}
}
