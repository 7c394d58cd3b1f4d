// Package faults holds the database migration's fault-injection tests (issue 9, database
// half): the worker SIGKILLed at seeded random points of an entity load, the Temporal dev
// server and a private PostgreSQL cluster restarted mid-migration, workflow resets, hostile
// identifiers in a spec, and resident memory over a 10x larger table. Every test checks the
// target by key against the source: zero rows missing, zero duplicated.
//
// The tests are named TestFault… so `make test-faults` selects them. Randomised ones log their
// seeds; CUTOVER_FAULT_SEED=<n> replays one.
package faults
