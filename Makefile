# alga-google — run `make help` for the targets.
SHELL := /usr/bin/env bash
.DEFAULT_GOAL := help

BIN      := $(CURDIR)/bin
export GOBIN := $(BIN)
export PATH  := $(BIN):$(PATH)

# Every tool pinned to an exact version, installed with `go install` into ./bin (nothing else is downloaded).
BUF_VERSION                 := v1.75.0
PROTOC_GEN_GO_VERSION       := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION  := v1.6.2
GRPC_GATEWAY_VERSION        := v2.33.0
STATICCHECK_VERSION         := v0.8.2
# The Temporal CLI is the dev server the maintenance integration tests start (testsuite.StartDevServer
# with ExistingPath): built once per machine (a cold build takes ~11 minutes on 2 cores), never downloaded
# at test time.
TEMPORAL_CLI_VERSION        := v1.5.1

# Every module of the workspace (go.work).
MODULES := $(shell go list -m -f '{{.Dir}}' 2>/dev/null)
GO_TEST_FLAGS ?= -count=1 -p 2 -timeout 20m
# The maintenance pass over 10,000 providers (services/suite/e2e) runs for tens of minutes on a small
# machine, past go test's default 10-minute timeout.
GO_BENCH_FLAGS ?= -timeout 90m

.PHONY: help
help: ## Show this help
	@grep -hE '^[a-z][a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | sort | awk 'BEGIN{FS=":.*?## "}{printf "  \033[36m%-16s\033[0m %s\n",$$1,$$2}'

$(BIN)/.buf-$(BUF_VERSION):
	go install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
	@touch $@
$(BIN)/.protoc-gen-go-$(PROTOC_GEN_GO_VERSION):
	go install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	@touch $@
$(BIN)/.protoc-gen-go-grpc-$(PROTOC_GEN_GO_GRPC_VERSION):
	go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	@touch $@
$(BIN)/.grpc-gateway-$(GRPC_GATEWAY_VERSION):
	go install github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway@$(GRPC_GATEWAY_VERSION) \
		github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2@$(GRPC_GATEWAY_VERSION)
	@touch $@

$(BIN)/.staticcheck-$(STATICCHECK_VERSION):
	go install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	@touch $@

$(BIN)/.temporal-$(TEMPORAL_CLI_VERSION):
	go install github.com/temporalio/cli/cmd/temporal@$(TEMPORAL_CLI_VERSION)
	@touch $@

.PHONY: temporal-cli
temporal-cli: $(BIN)/.temporal-$(TEMPORAL_CLI_VERSION) ## Build the pinned Temporal CLI (dev server for tests) into ./bin

.PHONY: tools
tools: $(BIN)/.buf-$(BUF_VERSION) $(BIN)/.protoc-gen-go-$(PROTOC_GEN_GO_VERSION) $(BIN)/.protoc-gen-go-grpc-$(PROTOC_GEN_GO_GRPC_VERSION) $(BIN)/.grpc-gateway-$(GRPC_GATEWAY_VERSION) $(BIN)/.staticcheck-$(STATICCHECK_VERSION) ## Install the pinned code-generation and lint tools into ./bin

.PHONY: generate
generate: tools ## Regenerate gen/ from proto/ (byte-for-byte reproducible)
	find gen -name '*.pb.go' -o -name '*.pb.gw.go' -o -name '*.swagger.json' | xargs -r rm -f
	buf generate

.PHONY: lint
lint: tools ## buf lint (STANDARD), go vet and staticcheck on every module
	buf lint
	@for m in $(MODULES); do echo "go vet + staticcheck $$m"; (cd $$m && go vet ./... && staticcheck ./...) || exit 1; done

.PHONY: verify
verify: generate ## Check generated code is current, then lint and vet
	git diff --exit-code -- gen
	@test -z "$$(git status --porcelain -- gen)" || { git status --porcelain -- gen; echo "gen/ has untracked changes: run make generate and commit"; exit 1; }
	$(MAKE) lint

.PHONY: build
# The version alga-google --version prints (main.version, stamped at link time; deploy/Dockerfile too).
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)

build: ## Build bin/alga-google (version stamped from git describe)
	cd services/suite && go build -ldflags "-X main.version=$(VERSION)" -o $(BIN)/alga-google ./cmd/alga-google

.PHONY: run
run: build ## Run the whole suite on embedded defaults (private PostgreSQL under .data/, Google sandbox)
	scripts/run.sh

.PHONY: test
test: verify temporal-cli ## Run every test (starts a private PostgreSQL under .data/ unless TEST_DATABASE_URL is set)
	@export TEST_DATABASE_URL="$${TEST_DATABASE_URL:-$$(scripts/devdb.sh)}"; \
	  go test $(GO_TEST_FLAGS) $(addsuffix /...,$(MODULES))

.PHONY: test-module
test-module: ## Run the tests of one module, without verify (e.g. make test-module M=services/secrets)
	@test -n "$(M)" || { echo "usage: make test-module M=services/<name>"; exit 1; }
	@export TEST_DATABASE_URL="$${TEST_DATABASE_URL:-$$(scripts/devdb.sh)}"; \
	  cd $(M) && go test -count=1 ./...

.PHONY: bench
bench: temporal-cli ## Run the benchmarks (figures printed beside their in-run baselines)
	@export TEST_DATABASE_URL="$${TEST_DATABASE_URL:-$$(scripts/devdb.sh)}"; \
	  go test -run '^$$' -bench . -benchmem $(GO_BENCH_FLAGS) $(addsuffix /...,$(MODULES))

.PHONY: clean
clean: ## Stop the private PostgreSQL and remove build output (keeps .data/dev.env)
	-scripts/devdb-stop.sh
	rm -rf bin
