package dbmigrate_test

import (
	"context"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// pgCPU sums the CPU time of the PostgreSQL server processes serving some databases while a
// run goes on: it lists them every 100 ms and keeps each one's last figure, so a process that
// ended counts (all but its last 100 ms). The server must run on this machine (its processes
// readable under /proc), as the test PostgreSQL does.
type pgCPU struct {
	stop chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	last map[int32]time.Duration
	// series is the CPU summed so far at each sample, for the CPU of a phase (between).
	series []cpuAt
}

type cpuAt struct {
	at  time.Time
	cpu time.Duration
}

// startPGCPU starts sampling the backends of the databases of urls (their path names them).
func startPGCPU(ctx context.Context, b *testing.B, urls ...string) *pgCPU {
	pool, err := pgxpool.New(ctx, urls[0])
	if err != nil {
		b.Fatal(err)
	}
	var names []string
	for _, u := range urls {
		p, err := url.Parse(u)
		if err != nil {
			b.Fatal(err)
		}
		names = append(names, strings.TrimPrefix(p.Path, "/"))
	}
	s := &pgCPU{stop: make(chan struct{}), last: map[int32]time.Duration{}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer pool.Close()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			s.sample(ctx, pool, names)
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

func (s *pgCPU) sample(ctx context.Context, pool *pgxpool.Pool, names []string) {
	rows, err := pool.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = ANY($1) AND pid <> pg_backend_pid()`, names)
	if err != nil {
		return
	}
	defer rows.Close()
	for rows.Next() {
		var pid int32
		if rows.Scan(&pid) != nil {
			return
		}
		if t := pidCPU(int(pid)); t > 0 {
			s.mu.Lock()
			s.last[pid] = max(s.last[pid], t)
			s.mu.Unlock()
		}
	}
	s.mu.Lock()
	s.series = append(s.series, cpuAt{at: time.Now(), cpu: s.sum()})
	s.mu.Unlock()
}

func (s *pgCPU) sum() time.Duration {
	var total time.Duration
	for _, t := range s.last {
		total += t
	}
	return total
}

// between is the CPU spent from a to b, as far as the 100 ms samples tell (call after end).
func (s *pgCPU) between(a, b time.Time) time.Duration {
	at := func(t time.Time) time.Duration {
		var c time.Duration
		for _, x := range s.series {
			if x.at.After(t) {
				break
			}
			c = x.cpu
		}
		return c
	}
	return at(b) - at(a)
}

// end stops sampling and returns the CPU time summed over every process seen.
func (s *pgCPU) end() time.Duration {
	close(s.stop)
	s.wg.Wait()
	return s.sum()
}
