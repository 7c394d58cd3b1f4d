package dbcopy

import (
	"fmt"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// checkTarget refuses a migration whose target would be the worker's control database (where
// email migrations, the vault and the worker's own bookkeeping live): the spec names no target
// and the worker has no default one, or the target named is that database. The application's
// tables have no place there, and a rollback there deletes beside the control tables.
func (a *Activities) checkTarget(sp *spec.Spec) error {
	dsn := sp.Target.DSN
	if dsn == "" {
		dsn = a.TargetURL
	}
	if dsn == "" {
		return fmt.Errorf("%w: the spec names no target database: set target.dsn (and target.credentials_ref) "+
			"to the PostgreSQL database the application will use; the worker's control database (DATABASE_URL) is "+
			"not a migration target (a worker-wide default target is %s)", ErrSpec, dbmigrateapi.EnvTargetURL)
	}
	if a.ControlURL != "" && sameDatabase(dsn, a.ControlURL) {
		return fmt.Errorf("%w: the target is the worker's control database (DATABASE_URL), which holds cutover's own "+
			"tables: set target.dsn (or %s) to the database the application will use", ErrSpec, dbmigrateapi.EnvTargetURL)
	}
	return nil
}

// sameDatabase reports whether two connection strings name the same database on the same
// server (host, port and database name; the loopback names are one host). Unparsable strings
// are not the same: connecting reports them.
func sameDatabase(a, b string) bool {
	ca, err := pgconn.ParseConfig(a)
	if err != nil {
		return false
	}
	cb, err := pgconn.ParseConfig(b)
	if err != nil {
		return false
	}
	return ca.Database == cb.Database && ca.Port == cb.Port && sameHost(ca.Host, cb.Host)
}

func sameHost(a, b string) bool {
	loopback := func(h string) bool {
		if strings.EqualFold(h, "localhost") {
			return true
		}
		ip := net.ParseIP(h)
		return ip != nil && ip.IsLoopback()
	}
	return strings.EqualFold(a, b) || (loopback(a) && loopback(b))
}
