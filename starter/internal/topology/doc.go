// Package topology holds the production topology tests: a real Temporal server on PostgreSQL
// (optionally requiring mutual TLS), `cutover temporal setup`, several worker processes, and an
// email job beside a database migration while workers are killed and restarted.
package topology
