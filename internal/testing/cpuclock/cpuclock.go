// Package cpuclock reads the CPU time a benchmark's own process and its PostgreSQL server
// processes used. On a machine shared with other work, wall time alone cannot tell the code's
// cost from the neighbours'; CPU time can.
package cpuclock

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Self is the CPU time (user + system) this process used so far.
func Self() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Backends sums the CPU time of the server processes of the pool's database whose
// application_name is app (read from /proc: the benchmark's PostgreSQL runs on this machine;
// 0 when it cannot be read).
func Backends(ctx context.Context, pool *pgxpool.Pool, app string) time.Duration {
	rows, err := pool.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1`, app)
	if err != nil {
		return 0
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return 0
	}
	var total time.Duration
	for _, pid := range pids {
		total += Proc(fmt.Sprintf("/proc/%d/stat", pid))
	}
	return total
}

// Proc reads utime + stime from a /proc/<pid>/stat file (clock ticks of 10 ms).
func Proc(path string) time.Duration {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return Stat(string(b))
}

// Stat is utime + stime of the text of a /proc/<pid>/stat file.
func Stat(stat string) time.Duration {
	// Fields after the command (which may hold spaces) close with ")".
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}
