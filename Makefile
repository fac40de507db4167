# The two commands a newcomer needs: `make run` and `make test`.
GO ?= go
PKGS := ./...

.PHONY: run test test-unit test-restart lint bench bench-cluster bench-go build

## run: start the command processor (on the embedded transport unless RABBIT_URL is set)
run:
	$(GO) run ./cmd/command-processor

## test: lint, every test with the race detector, then the broker-restart tests alone
test: lint test-unit test-restart

test-unit:
	$(GO) test -race -count=1 -timeout 15m $(PKGS)

# Tests named TestDisruptive_* stop RabbitMQ or Redis or kill processes, so
# they skip unless BB_TEST_DISRUPTIVE=1 and run after everything else, one
# package at a time.
DISRUPTIVE_PKGS = $(sort $(dir $(shell grep -rl --include='*_test.go' 'func TestDisruptive_' .)))
test-restart:
	BB_TEST_DISRUPTIVE=1 $(GO) test -race -count=1 -p 1 -timeout 10m -run 'Disruptive' $(DISRUPTIVE_PKGS)

## lint: gofmt, go vet, then staticcheck (pinned in go.mod as a tool)
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) tool staticcheck $(PKGS)

## bench: cmd/bench against RabbitMQ and Redis, raw baselines and peers side by side (~12 min; BENCH_FLAGS=-quick for a few)
bench:
	$(GO) run ./cmd/bench $(BENCH_FLAGS)

## bench-cluster: the publish and consume metrics on a private three-node RabbitMQ cluster with quorum queues (scripts/cluster/rabbitmq.sh)
bench-cluster:
	$(GO) run ./cmd/bench -cluster -only publish_confirmed_1,publish_confirmed_16,consume_full_stack $(BENCH_FLAGS)

## bench-go: Go benchmarks of the hot paths, with allocations (broker/Redis ones skip without them)
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

## build: the binaries, into bin/
build:
	$(GO) build -o bin/ ./cmd/...
