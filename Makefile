# PlanQK secrets engine for HashiCorp Vault.
#   make dev    build everything and run the engine live in a Vault dev server
#   make test   the whole test suite: unit (-race), fuzz seed corpora, end-to-end in real Vault

SHELL       := /bin/bash
VERSION     ?= v0.2.0
# The release the end-to-end suite upgrades from, and its commit.
PREVIOUS        := v0.1.0
PREVIOUS_COMMIT := efe7a95
PLUGIN      := vault-plugin-secrets-planqk
MODULE      := github.com/planqk/vault-plugin-secrets-planqk
LDFLAGS     := -X $(MODULE)/backend.Version=$(VERSION)
GO          ?= go

.PHONY: all build vault apache dev dev-existing test test-unit test-e2e test-e2e-repeat test-reliability bench bench-scale bench-micro fuzz vet fmt clean \
	build-portal test-portal portal-screenshots

all: build

build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/$(PLUGIN) ./cmd/$(PLUGIN)
	$(GO) build -trimpath -o bin/planqk-bootstrap ./cmd/planqk-bootstrap

# bin/vault, built once from Vault's Go module; VAULT_BIN or a vault on PATH is used instead when it is the pinned version (1.21.4).
vault:
	@scripts/ensure-vault.sh >/dev/null

# Apache httpd and mod_auth_openidc for the gateway test, from Debian's packages (apt-get as root).
apache:
	@scripts/ensure-apache.sh >/dev/null

dev: build build-portal
	@VERSION=$(VERSION) scripts/dev.sh

# The engine in an existing Vault (VAULT_ADDR, VAULT_TOKEN); see the README.
dev-existing: build build-portal
	@VERSION=$(VERSION) scripts/dev.sh --existing

test: vet test-unit test-e2e test-portal

vet:
	$(GO) vet ./...
	$(GO) vet -tags e2e ./scripts/...
	$(GO) vet -tags reliability ./scripts/...
	$(GO) vet -tags portal ./cmd/planqk-portal/...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }

# Unit tests in process, with the race detector; the fuzz targets' seed corpora run as tests.
# The benchmark's statistics, checks and report (no Vault, well under a second).
test-unit:
	$(GO) test -race -count=1 ./backend/... ./bootstrap/... ./cmd/...
	$(GO) test -count=1 ./scripts/bench/... ./scripts/vaultharness/... ./scripts/internal/... ./scripts/docs/...

E2E_ENV = VAULT_BIN=$$(scripts/ensure-vault.sh) PLANQK_PLUGIN_BIN=$(CURDIR)/bin/$(PLUGIN) PLANQK_PLUGIN_VERSION=$(VERSION) \
	PLANQK_PREVIOUS_PLUGIN_BIN=$(CURDIR)/bin/$(PLUGIN)-$(PREVIOUS) PLANQK_PREVIOUS_VERSION=$(PREVIOUS) \
	MOTO_SERVER_BIN=$$(scripts/ensure-moto.sh)
test-e2e: build vault apache bin/$(PLUGIN)-$(PREVIOUS)
	$(E2E_ENV) $(GO) test -tags e2e -count=1 -timeout 10m ./scripts/e2e/...

# The end-to-end suite twice over in one server run, in a shuffled order (the seed is printed):
# a test that depends on another's leftovers or on running first fails here (about 7 minutes).
test-e2e-repeat: build vault apache bin/$(PLUGIN)-$(PREVIOUS)
	$(E2E_ENV) $(GO) test -tags e2e -count=2 -shuffle=on -timeout 20m ./scripts/e2e/...

# The previous release, built from the repository's own history, for the
# end-to-end upgrade test.
bin/$(PLUGIN)-$(PREVIOUS):
	scripts/build-release.sh $(PREVIOUS) $(PREVIOUS_COMMIT) $@

# The 3-node raft cluster: forwarding, failover under load, restarts, plugin crash, log leaks (2-3 minutes).
# The summary, with the commit it ran on, goes to scripts/reliability/results/summary.md.
test-reliability: build vault
	VAULT_BIN=$$(scripts/ensure-vault.sh) PLANQK_PLUGIN_BIN=$(CURDIR)/bin/$(PLUGIN) PLANQK_PLUGIN_VERSION=$(VERSION) \
		PLANQK_RELIABILITY_OUT=$(CURDIR)/scripts/reliability/results/summary.md \
		$(GO) test -tags reliability -count=1 -timeout 15m -v ./scripts/reliability/... 2>&1 | \
		grep -v -E '^(=== (RUN|PAUSE|CONT)|    --- PASS)'; exit $${PIPESTATUS[0]}

# The self-service portal (cmd/planqk-portal).
build-portal:
	$(GO) build -trimpath -o bin/planqk-portal ./cmd/planqk-portal

# The portal against a real Vault dev server: handler tests, OIDC sign-in through Vault's own OIDC
# provider, and browser tests in headless Chromium (Debian's chromium, installed when missing).
# Screenshots go to bin/portal-screenshots.
PORTAL_TEST_ENV = VAULT_BIN=$$(scripts/ensure-vault.sh) CHROMIUM_BIN=$$(scripts/ensure-chromium.sh) \
	PLANQK_PLUGIN_BIN=$(CURDIR)/bin/$(PLUGIN) PLANQK_PLUGIN_VERSION=$(VERSION)
test-portal: build vault
	@mkdir -p bin/portal-screenshots
	$(PORTAL_TEST_ENV) PORTAL_SCREENSHOTS=$(CURDIR)/bin/portal-screenshots \
		$(GO) test -tags portal -count=1 -timeout 10m ./cmd/planqk-portal/...

# Refreshes the README's screenshots from the browser tests.
portal-screenshots: build vault
	$(PORTAL_TEST_ENV) PORTAL_SCREENSHOTS=$(CURDIR)/cmd/planqk-portal/screenshots \
		$(GO) test -tags portal -count=1 -timeout 10m -run 'TestBrowser' ./cmd/planqk-portal/...

# The engine against the cheapest no-op plugin operations, Vault's token store and KV v2, in one
# freshly started server: 5 interleaved rounds, per-round ratios, verdicts (about 10 minutes);
# moto_server stands in for AWS STS in the derived-credentials rows.
# BENCH_FLAGS: -raft (integrated storage), -rounds, -duration, -users, -pats-per-user, -seed, and for bench-scale -scale-users, -scale-per-user, -scale-rounds, -scale-duration; e.g. a
# smoke run: BENCH_FLAGS="-rounds 2 -duration 300ms -settle 100ms -warmup 100ms -users 10 -out /tmp/bench"
BENCH_FLAGS ?=
bench: build vault
	$(GO) build -trimpath -o bin/bench-noop ./scripts/bench/noop
	VAULT_BIN=$$(scripts/ensure-vault.sh) PLANQK_PLUGIN_BIN=$(CURDIR)/bin/$(PLUGIN) PLANQK_PLUGIN_VERSION=$(VERSION) NOOP_PLUGIN_BIN=$(CURDIR)/bin/bench-noop \
		MOTO_SERVER_BIN=$$(scripts/ensure-moto.sh) $(GO) run ./scripts/bench $(BENCH_FLAGS)

# The same, then 100,000 PATs across 1,000 users: verify, lists, inventory paging and tidy at scale.
bench-scale:
	$(MAKE) bench BENCH_FLAGS="$(BENCH_FLAGS) -scale"

# The engine's own cost per operation in process (backend/bench_test.go), 3 runs each, into
# scripts/bench/results/microbench.txt with the commit it ran on; the README quotes that file.
# (The commit is read before the output file is touched, which would make it -dirty.)
bench-micro:
	@commit=$$(git describe --always --dirty); \
	{ echo "# go test ./backend -run '^$$' -bench . -benchmem -count 3, at commit $$commit, $$(date -u +%Y-%m-%dT%H:%M:%SZ)"; \
		$(GO) test ./backend -run '^$$' -bench . -benchmem -count 3; } > scripts/bench/results/microbench.txt.tmp && \
	mv scripts/bench/results/microbench.txt.tmp scripts/bench/results/microbench.txt
	@cat scripts/bench/results/microbench.txt

# Fuzz each target for FUZZTIME (default 30s).
FUZZTIME ?= 30s
fuzz:
	$(GO) test ./backend -run '^$$' -fuzz '^FuzzWellFormedToken$$' -fuzztime $(FUZZTIME)
	$(GO) test ./backend -run '^$$' -fuzz '^FuzzValidateProviderValues$$' -fuzztime $(FUZZTIME)
	$(GO) test ./backend -run '^$$' -fuzz '^FuzzBuildProvider$$' -fuzztime $(FUZZTIME)
	$(GO) test ./backend -run '^$$' -fuzz '^FuzzRenderDotenv$$' -fuzztime $(FUZZTIME)

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin/$(PLUGIN) bin/planqk-bootstrap bin/plugins bin/planqk-portal bin/portal-screenshots
