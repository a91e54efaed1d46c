# wsmq: the project's vocabulary. README and .ci/run use these targets.
SHELL := /bin/bash
ROOT  := $(CURDIR)
BIN   := $(ROOT)/bin
export PATH := $(BIN):$(PATH)

PROTOC_GEN_GO_VERSION      := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
PROTOC_GEN_OPENAPIV2_VERSION := v2.33.0
GOLANGCI_LINT_VERSION      := v2.15.0
FERRETDB_VERSION           := v1.24.2
GRPCURL_VERSION            := v1.9.4
# Fuzz budgets are execution counts (Nx), not durations: with a duration Go
# 1.26's fuzz coordinator can fail a clean run with "context deadline
# exceeded" at the deadline (golang/go#75804, fixed in Go 1.27).
FUZZTIME ?= 1000000x

MODULES = $(shell go list -m -f '{{.Dir}}/...')
MODULE_DIRS = $(shell go list -m -f '{{.Dir}}')
# Modules kept outside go.work on purpose (FerretDB's dependency graph must
# not reach the others' versions); modules-check checks them too.
STANDALONE_MODULE_DIRS = $(ROOT)/tools/mongowire
PROTOS  = $(shell find proto -name '*.proto' | sort)
SERVICES = auth gateway publisher
TOOLS    = wsmqctl wsmq-run wsmq-bench

.PHONY: all deps grpcurl tools proto proto-check build test fuzz lint modules-check run compose-lint compose-images compose-test bench bench-full clean

all: build

## deps: install system packages the tests and the stack need (Debian, as root)
deps:
	@bash scripts/deps.sh

## tools: Go-built tools cached in bin/ (protoc plugins, linter, MongoDB-wire dev server)
tools: $(BIN)/protoc-gen-go $(BIN)/protoc-gen-go-grpc $(BIN)/protoc-gen-openapiv2 $(BIN)/wsmq-mongowire

$(BIN)/protoc-gen-go:
	GOBIN=$(BIN) go install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)

$(BIN)/protoc-gen-go-grpc:
	GOBIN=$(BIN) go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)

$(BIN)/protoc-gen-openapiv2:
	GOBIN=$(BIN) go install github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2@$(PROTOC_GEN_OPENAPIV2_VERSION)

$(BIN)/golangci-lint:
	GOBIN=$(BIN) go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)

## grpcurl: install grpcurl into bin/ (the README's gRPC examples; CI runs them)
grpcurl: $(BIN)/grpcurl

$(BIN)/grpcurl:
	GOBIN=$(BIN) go install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION)

$(BIN)/wsmq-mongowire: tools/mongowire/main.go tools/mongowire/go.mod
	cd tools/mongowire && GOWORK=off go build -o $(BIN)/wsmq-mongowire .

OPENAPI       := services/publisher/internal/httpapi/openapi.json
HTTP_RULES    := proto/wsmq/publisher/v1/http.yaml
PUBLISHER_PROTOS = $(filter proto/wsmq/publisher/%,$(PROTOS))

## proto: regenerate gen/ from proto/, and the publisher's OpenAPI document
## from its protos and HTTP rules (protoc-gen-openapiv2, then openapigen
## for what the hand-written HTTP API does differently)
proto: $(BIN)/protoc-gen-go $(BIN)/protoc-gen-go-grpc $(BIN)/protoc-gen-openapiv2
	protoc -I proto \
	  --go_out=gen --go_opt=module=github.com/wsmq/wsmq/gen \
	  --go-grpc_out=gen --go-grpc_opt=module=github.com/wsmq/wsmq/gen \
	  $(PROTOS)
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	  protoc -I proto --openapiv2_out=$$tmp \
	    --openapiv2_opt=grpc_api_configuration=$(HTTP_RULES),allow_merge=true,merge_file_name=publisher \
	    $(PUBLISHER_PROTOS) && \
	  go run ./services/publisher/internal/httpapi/openapigen -in $$tmp/publisher.swagger.json -out $(OPENAPI)

## proto-check: fail when gen/ or the OpenAPI document differs from what proto/ produces
proto-check: proto
	@git diff --exit-code --stat -- gen $(OPENAPI) || { echo "gen/ or $(OPENAPI) is stale: run 'make proto' and commit them"; exit 1; }
	@test -z "$$(git ls-files --others --exclude-standard gen)" || { echo "untracked files in gen/: run 'make proto' and commit gen/"; exit 1; }

## build: build every service and tool binary into bin/
build:
	@for s in $(SERVICES); do go build -o $(BIN)/wsmq-$$s ./services/$$s || exit 1; done
	@for t in $(TOOLS); do go build -o $(BIN)/$$t ./tools/$$t || exit 1; done

## test: every test of every module, with the race detector, against real servers
test: tools
	go test -race -count=1 -timeout 20m $(MODULES)

## fuzz: run each fuzz target briefly
fuzz:
	go test -run '^$$' -fuzz FuzzValidateQueueName -fuzztime $(FUZZTIME) ./pkg/rsmq
	go test -run '^$$' -fuzz FuzzValidateID -fuzztime $(FUZZTIME) ./pkg/rsmq
	go test -run '^$$' -fuzz FuzzVerifyToken -fuzztime $(FUZZTIME) ./services/auth/internal/tokens
	go test -run '^$$' -fuzz FuzzDecodeSendRequest -fuzztime $(FUZZTIME) ./services/publisher/internal/server
	go test -run '^$$' -fuzz FuzzCommandAndFrames -fuzztime $(FUZZTIME) ./services/gateway/internal/wsconn
	go test -run '^$$' -fuzz FuzzDecodeFrame -fuzztime $(FUZZTIME) ./services/gateway/protocol
	go test -run '^$$' -fuzz FuzzParseLine -fuzztime $(FUZZTIME) ./tools/wsmqctl/internal/batchfile
	go test -run '^$$' -fuzz FuzzValidMatchesTheRule -fuzztime $(FUZZTIME) ./pkg/userid
	go test -run '^$$' -fuzz FuzzParseURL -fuzztime $(FUZZTIME) ./pkg/redisconn
	go test -run '^$$' -fuzz FuzzClientIP -fuzztime $(FUZZTIME) ./services/gateway/internal/clientaddr

## lint: gofmt, go vet, golangci-lint
lint: $(BIN)/golangci-lint
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^gen/')); test -z "$$out" || { echo "gofmt needed:"; echo "$$out"; exit 1; }
	go vet $(MODULES)
	golangci-lint run $(MODULES)

## modules-check: every module (go.work's and tools/mongowire) builds and vets on its
## own (GOWORK=off), and `go mod tidy` would leave its go.mod and go.sum unchanged
modules-check:
	@for d in $(MODULE_DIRS) $(STANDALONE_MODULE_DIRS); do \
	  echo "$${d#$(ROOT)/}"; \
	  (cd $$d && GOWORK=off go build -o /dev/null ./... && GOWORK=off go vet ./...) || { echo "$$d does not build alone (GOWORK=off): fix its go.mod (GOWORK=off go mod tidy; replace directives for local modules)"; exit 1; }; \
	  (cd $$d && GOWORK=off go mod tidy -diff) || { echo "$$d: go.mod/go.sum not tidy: run 'cd $${d#$(ROOT)/} && GOWORK=off go mod tidy' and commit"; exit 1; }; \
	done

## run: install what is missing, then start the whole stack on loopback (Ctrl-C stops it)
run: deps build tools
	$(BIN)/wsmq-run -data $(ROOT)/data

## compose-lint: validate docker-compose.yml without a Docker engine
compose-lint:
	docker-compose -f docker-compose.yml config -q

## compose-images: TEST-ONLY stand-ins for the upstream images (no registry), see deploy/README.md
compose-images:
	bash scripts/compose-images.sh

## compose-test: docker compose up --build for real, end to end (needs a Docker engine)
compose-test:
	bash scripts/compose-e2e.sh

## bench: quick benchmarks of every part (Go benchmarks, then end-to-end scenarios)
bench: tools build
	go test -run '^$$' -bench . -benchtime 1s $(MODULES)
	$(BIN)/wsmq-bench -quick -bin $(BIN) -out bench/results

## bench-full: end-to-end scenarios at full size
bench-full: tools build
	$(BIN)/wsmq-bench -full -bin $(BIN) -out bench/results

clean:
	rm -rf $(BIN)
