# Targets named in README.md. `make test` runs exactly the README's test command.
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: build test lint demo bench bench-scale e2e clean chaos chaos-short fuzz soak

build:
	CGO_ENABLED=0 $(GO) build -tags nodemo,grpcnotrace -trimpath -ldflags '$(LDFLAGS)' -o bin/leaderd ./cmd/leaderd

test:
	$(GO) test -race -count=1 ./...

# staticcheck, pinned: module v0.8.2 is staticcheck 2026.2.2, which knows
# Go 1.26. `go run pkg@version` fetches it through the module proxy once
# (then the module cache) and leaves go.mod alone.
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

demo:
	$(GO) run ./cmd/leaderd demo

bench:
	$(GO) run ./bench

# The scale bench: SCALE_N elections × 3 sidecars on a 3-process etcd
# cluster (BENCHMARKS.md). N = 1000 wants the machine to itself.
SCALE_N ?= 100,300,1000
bench-scale:
	$(GO) run ./bench -scale -scale-n $(SCALE_N)

clean:
	rm -rf bin

# The randomized fault campaign (RELIABILITY.md). SEED picks the faults;
# a failing seed replays with the command its report prints.
# CHAOS_FLAGS adds flags, e.g. CHAOS_FLAGS="-priorities -failback 5s".
SEED ?= $(shell date +%s)
FAULTS ?= 500
CHAOS_FLAGS ?=
chaos:
	$(GO) run ./chaos -seed $(SEED) -faults $(FAULTS) $(CHAOS_FLAGS)

# The short fixed-seed campaign CI runs (about three minutes), with the
# replicas built with the race detector and given distinct priorities and
# failback, so every win runs the yield decision and failback hands over.
chaos-short:
	$(GO) run ./chaos -seed 1 -faults 40 -replicas 3 -race -priorities -failback 5s

# Every fuzz target for FUZZTIME (default 2m) each.
fuzz:
	scripts/fuzz.sh

# The soak: churn for SOAK (default 30m), sampling leaderd's footprint.
SOAK ?= 30m
soak:
	$(GO) run ./chaos -soak $(SOAK)

# docker compose demo and end-to-end suite (see examples/compose/).
# images: build leaderd, demo-app and etcd images offline (scripts/images.sh).
# e2e: images, stack up, go test -tags e2e ./e2e/..., always torn down.
.PHONY: images e2e compose-up compose-down

images:
	scripts/images.sh

e2e:
	scripts/e2e.sh

compose-up: images
	scripts/compose.sh up -d
	@echo "apps: http://127.0.0.1:8081 8082 8083  leaderd API: http://127.0.0.1:18001 18002 18003"

compose-down:
	scripts/compose.sh down -v --remove-orphans
