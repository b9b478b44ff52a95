# Presence: one binary, every asset embedded. `make run` and `make test` are
# all a fresh clone needs (Go 1.26+).

GO      ?= go
BIN     ?= bin/presence
ARGS    ?=

.PHONY: run demo test test-postgres fuzz bench loadtest build generate css vendor assets check-generated vet fmt

## run: start the server on http://localhost:8080 with data in ./data
run:
	$(GO) run ./cmd/presence serve $(ARGS)

## demo: a throwaway demo on http://localhost:8080: 40 simulated people come
## and go; one click signs you in as one of them; nothing is kept
demo:
	$(GO) run ./cmd/presence serve --demo $(ARGS)

## test: vet, every test with the race detector, then each fuzzer briefly
## (cmd/presence alone takes ~10 min under -race with the browser tests:
## past go test's default 10-minute timeout)
test: vet
	$(GO) test -race -count=1 -timeout 30m ./...
	$(MAKE) fuzz

## test-postgres: the handler and webhook tests again on PostgreSQL (the
## store and server tests run on it in every `make test` already); needs
## PostgreSQL at PRESENCE_TEST_DATABASE_URL
test-postgres:
	PRESENCE_TEST_STORE=postgres $(GO) test -race -count=1 ./handlers/ ./webhook/

## fuzz: run each fuzzer for FUZZTIME inputs (the committed corpus in
## testdata/ runs in every plain `go test` too). A count, not a duration: with
## a duration, Go 1.26's fuzz coordinator can fail a clean run with "context
## deadline exceeded" at the deadline on a loaded machine (golang/go#75804,
## fixed in Go 1.27). The avatar fuzzer decodes images, ~10x slower per input.
FUZZTIME ?= 10000x
FUZZTIME_SLOW ?= 2000x
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzWSMessage$$' -fuzztime $(FUZZTIME) ./realtime
	$(GO) test -run '^$$' -fuzz '^FuzzWSReader$$' -fuzztime $(FUZZTIME) ./realtime
	$(GO) test -run '^$$' -fuzz '^FuzzWidgetOptions$$' -fuzztime $(FUZZTIME) ./handlers
	$(GO) test -run '^$$' -fuzz '^FuzzHostToken$$' -fuzztime $(FUZZTIME) ./handlers
	$(GO) test -run '^$$' -fuzz '^FuzzValidateUsername$$' -fuzztime $(FUZZTIME) ./store
	$(GO) test -run '^$$' -fuzz '^FuzzValidatePassword$$' -fuzztime $(FUZZTIME) ./store
	$(GO) test -run '^$$' -fuzz '^FuzzProcess$$' -fuzztime $(FUZZTIME_SLOW) ./avatar
	$(GO) test -run '^$$' -fuzz '^FuzzRoomProblem$$' -fuzztime $(FUZZTIME) ./presence

## bench: Go benchmarks of the hot paths (see docs/PERFORMANCE.md)
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

## loadtest: build, then drive the real server with simulated tabs (see
## docs/PERFORMANCE.md). LOADGEN_ARGS=-tabs=9000 -hold=5m reproduces the table.
LOADGEN_ARGS ?=
loadtest: build
	$(GO) build -o bin/loadgen ./cmd/loadgen
	bin/loadgen -server $(BIN) $(LOADGEN_ARGS)

## build: a static binary in bin/ (no cgo, no Node needed)
build:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN) ./cmd/presence

## generate: regenerate templ components (*_templ.go are committed)
generate:
	$(GO) tool templ generate

## css: rebuild static/app.css, and static/embed.css (the widget's CSS scoped
## for other sites, embed.js), with Tailwind (needs Node; the output is committed)
css: node_modules
	npx tailwindcss -c tailwind.config.js -i views/app.css -o static/app.css --minify
	npx tailwindcss -c tailwind.embed.config.js -i views/embed.css -o static/embed.css --minify

## vendor: copy the pinned htmx and its SSE extension into static/
vendor: node_modules
	cp node_modules/htmx.org/dist/htmx.min.js static/htmx.min.js
	cp node_modules/htmx-ext-sse/dist/sse.min.js static/sse.min.js

## assets: everything generated: templ code, CSS, vendored JS
assets: generate css vendor

node_modules: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch node_modules

## check-generated: fail when committed generated files are stale
check-generated: assets
	@git diff --exit-code -- '*_templ.go' static/ || { echo "generated files are stale: run make assets and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- views static)" || { git status --short -- views static; echo "untracked generated files: run make assets and commit"; exit 1; }

vet:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

fmt:
	gofmt -w $$(git ls-files '*.go')
