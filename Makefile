# cutover — the entry points. `make demo` and `make test` are all a newcomer needs; both install
# what they use (Go tools into ./bin, Debian packages when run as root) and are idempotent.

SHELL          := /bin/bash
.SHELLFLAGS    := -eu -o pipefail -c
GO             ?= go
BIN            := $(CURDIR)/bin
TEMPORAL_VER   := v1.5.1
TEMPORAL       := $(BIN)/temporal
STATICCHECK_VER := v0.8.2 # 2026.2.2
STATICCHECK    := $(BIN)/staticcheck
SERVER_VER     := v1.29.1
TEMPORAL_SERVER := $(BIN)/temporal-server
DEBS           := dovecot-imapd dovecot-core pst-utils chromium pgloader iproute2 iptables
PG_HOST        ?= 127.0.0.1
PG_PORT        ?= 5432
TEST_TIMEOUT   ?= 22m
export DATABASE_URL ?= postgres://postgres@$(PG_HOST):$(PG_PORT)/cutover

.PHONY: all build tools debs imap-servers postgres test test-codec test-slow test-unit test-faults bench dev down demo fmt vet clean

all: build

## build: the operator CLI (bin/cutover) and the worker (bin/cutover-worker)
build:
	$(GO) build -o $(BIN)/cutover ./starter
	$(GO) build -o $(BIN)/cutover-worker ./worker

## tools: the temporal CLI (dev server + UI) and the Temporal server with its SQL tool and PostgreSQL
## schema (the production topology test) into ./bin; Debian packages: Dovecot, readpst, Chromium
## (UI tests), pgloader (benchmark baseline), ip and iptables (the WAN benchmarks' kernel-level
## delay, internal/testing/netdelay); Cyrus and Courier IMAP extracted under ./bin (imap-servers)
tools: $(TEMPORAL) $(TEMPORAL_SERVER) debs imap-servers

$(TEMPORAL):
	@echo "installing temporal CLI $(TEMPORAL_VER) into ./bin (a few minutes, once)"
	GOBIN=$(BIN) $(GO) install github.com/temporalio/cli/cmd/temporal@$(TEMPORAL_VER)

# The server as production runs it (PostgreSQL persistence and visibility): its binary, the SQL
# tool that sets up the schema, and the schema files from the same module version.
$(TEMPORAL_SERVER):
	@echo "building Temporal server $(SERVER_VER) and its SQL tool into ./bin (ten minutes or so, once)"
	rm -rf $(BIN)/.temporal-server-build && mkdir -p $(BIN)/.temporal-server-build
	GOBIN=$(BIN)/.temporal-server-build $(GO) install go.temporal.io/server/cmd/server@$(SERVER_VER) \
		go.temporal.io/server/cmd/tools/sql@$(SERVER_VER)
	rm -rf $(BIN)/temporal-schema && mkdir -p $(BIN)/temporal-schema
	cp -R "$$($(GO) mod download -json go.temporal.io/server@$(SERVER_VER) | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$$/\1/p')/schema/postgresql" \
		$(BIN)/temporal-schema/ && chmod -R u+w $(BIN)/temporal-schema
	mv $(BIN)/.temporal-server-build/sql $(BIN)/temporal-sql-tool
	mv $(BIN)/.temporal-server-build/server $(TEMPORAL_SERVER) && rmdir $(BIN)/.temporal-server-build

debs:
	@missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then echo "missing Debian packages:$$missing (run 'make tools' as root)"; exit 1; fi; \
	echo "installing$$missing"; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null

## imap-servers: Cyrus and Courier IMAP for the interoperability tests, downloaded as Debian packages
## (with the libraries they need that are not installed) and extracted into ./bin/imap-servers, never
## installed: both conflict with Dovecot. The tests start them from there (internal/testing/testenv)
imap-servers: debs
	internal/testing/testenv/imapservers.sh $(BIN)/imap-servers

## postgres: make sure the local PostgreSQL answers (starts the Debian cluster when root)
postgres:
	@if pg_isready -q -h $(PG_HOST) -p $(PG_PORT) 2>/dev/null; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v pg_ctlcluster >/dev/null; then \
		v=$$(ls /etc/postgresql | sort -V | tail -1); echo "starting PostgreSQL $$v"; \
		pg_ctlcluster --skip-systemctl-redirect $$v main start; \
		for i in $$(seq 50); do pg_isready -q -h $(PG_HOST) -p $(PG_PORT) && exit 0; sleep 0.2; done; \
	fi; \
	echo "PostgreSQL is not answering on $(PG_HOST):$(PG_PORT)"; exit 1

## test: every test, integration included (real PostgreSQL, Temporal dev server, Dovecot)
test: tools postgres
	$(GO) vet ./...
	mkdir -p $(CURDIR)/.artifacts
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) -artifacts -outputdir $(CURDIR)/.artifacts ./...
	$(MAKE) --no-print-directory test-codec

## test-codec: the end-to-end tests again with the payload codec on (a fresh key): worker,
## clients, the cutover CLI and the temporal CLI (through a codec endpoint) all go through it
E2E_TESTS ?= EndToEnd|MixedSourcesJob|MailSystem|RollbackReturnsTarget
test-codec: tools postgres
	CUTOVER_PAYLOAD_KEYS=$$($(GO) run ./starter codec genkey) $(GO) test -count=1 -timeout $(TEST_TIMEOUT) \
		-run '$(E2E_TESTS)' ./workflows/email/ ./workflows/dbmigrate/ ./activities/mail/sources/e2e/ ./examples/...

## test-slow: the interoperability matrix with the pair `make test` leaves out (Dovecot → Cyrus
## with the worker SIGKILLed) beside the four default pairs, each through the whole product; and
## a 500-mailbox domain imported from a CSV and driven to verified (make test runs 40)
test-slow: tools postgres
	$(GO) test -tags slow -count=1 -timeout $(TEST_TIMEOUT) -run 'Matrix' ./workflows/email/
	$(GO) test -tags slow -count=1 -timeout 70m -v -run 'TestImportCSVJobVerified500' ./starter/cli/

## test-unit: the tests that need no external service
test-unit:
	$(GO) test -short -count=1 ./...

## test-faults: the fault-injection tests only (TestFault…: killed workers, restarted servers,
## workflow resets, hostile input, memory under load) and the fuzz targets' checked-in corpora;
## `make test` runs them too. Randomised tests log their seeds; CUTOVER_FAULT_SEED=n replays one
test-faults: tools postgres
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) -run 'Fault|Fuzz|Security' ./...

## bench: throughput benchmarks against real servers (figures are printed, never asserted); -p 1
## keeps packages from competing for the CPU while they measure. BENCH_COUNT=5 repeats each
## benchmark (take the median); CUTOVER_IMAPSYNC=/path/to/imapsync runs imapsync beside the mail
## engine on the same corpora (imapsync is never downloaded by the build)
BENCH_COUNT   ?= 1
BENCH_TIMEOUT ?= 60m
bench: tools postgres
	$(GO) test -p 1 -run '^$$' -bench . -benchtime 1x -count $(BENCH_COUNT) -timeout $(BENCH_TIMEOUT) ./...

## dev: a local stack in the background: Temporal dev server (UI on :8233), schema, worker
dev: build tools postgres
	$(BIN)/cutover dev up

## down: stop what `make dev` and `make demo` started (the demo's Dovecots too)
down:
	@if [ -x $(BIN)/cutover ]; then $(BIN)/cutover dev down; else $(GO) run ./starter dev down; fi

## demo: the stack, two local Dovecots with a generated corpus, an email job through every phase
## (approved by a logged demo operator) and the mail system's SQLite→PostgreSQL migration, with their
## HTML reports; prints where to look. Idempotent: every run starts fresh Dovecots and a new job.
demo: dev
	$(BIN)/cutover health
	$(BIN)/cutover demo

fmt:
	gofmt -w $$(git ls-files '*.go')

## vet: go vet and staticcheck (installed into ./bin once)
vet: $(STATICCHECK)
	$(GO) vet ./...
	$(STATICCHECK) ./...

$(STATICCHECK):
	GOBIN=$(BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VER)

clean: down
	rm -rf .cutover $(BIN)/cutover $(BIN)/cutover-worker
