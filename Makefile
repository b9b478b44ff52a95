# Presence: one binary, every asset embedded. `make run` and `make test` are
# all a fresh clone needs (Go 1.26+).

GO      ?= go
BIN     ?= bin/presence
ARGS    ?=

.PHONY: run test build generate check-generated vet fmt

## run: start the server on http://localhost:8080 with data in ./data
run:
	$(GO) run ./cmd/presence serve $(ARGS)

## test: vet, then every test with the race detector
test: vet
	$(GO) test -race -count=1 ./...

## build: a static binary in bin/ (no cgo, no Node needed)
build:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN) ./cmd/presence

## generate: regenerate templ components (*_templ.go are committed)
generate:
	$(GO) tool templ generate

## check-generated: fail when committed generated files are stale
check-generated: generate
	@git diff --exit-code -- '*_templ.go' || { echo "generated files are stale: run make generate and commit"; exit 1; }

vet:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

fmt:
	gofmt -w $$(git ls-files '*.go')
