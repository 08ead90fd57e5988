# airollout: `make demo` and `make test` each install and build what they need.
# Go builds (etcd, kube-apiserver, ...) are cached by version in $(AIROLLOUT_CACHE), outside the
# checkout, so a fresh clone reuses them.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
export AIROLLOUT_CACHE ?= $(HOME)/.cache/airollout
NODE := node_modules/.bin/node
VITEST_REPORT ?= $(CURDIR)/.vitest-report.json

.PHONY: all deps tools tools-controlplane crd lint typecheck unit integration test demo demo-down bench clean help

all: test

help:
	@echo "make demo      local control plane + controller + the example AIRollout"
	@echo "make test      lint, typecheck, unit and integration tests (real API server)"
	@echo "make demo-down stop the demo's controller and local control plane"
	@echo "make tools     build the Go tools into $(AIROLLOUT_CACHE) (cached by version), install Prometheus and Redis"
	@echo "make crd       regenerate crds/ from the zod schemas"

# node_modules (including Node.js 24 itself, from the npm package `node`) follow package-lock.json.
node_modules/.package-lock.json: package.json package-lock.json
	@command -v npm >/dev/null || { echo "npm is required to install the project's pinned Node.js 24 (apt-get install npm)"; exit 1; }
	npm ci --no-audit --no-fund
	@touch $@

deps: node_modules/.package-lock.json
	@bash hack/ensure-system.sh

# Everything the tests start: Go builds (cached by version) and Debian's Prometheus, Redis and
# chromium (the dashboard's browser tests).
tools: deps
	@bash hack/ensure-system.sh prometheus redis-server chromium
	@bash hack/build-tool.sh all >/dev/null

tools-controlplane: deps
	@bash hack/build-tool.sh controlplane >/dev/null

crd: deps
	$(NODE) controller/src/api/gen-crd.ts

lint: deps
	npm run --silent lint

typecheck: deps
	npm run --silent typecheck

unit: deps
	npx vitest run --project unit

integration: tools
	npx vitest run --project integration

# Unit tests first, on their own, then integration tests: a slow integration test (control plane,
# Prometheus, Pulumi) never shares the CPU with a unit test's timers. Both always run; the last
# line is the totals of both, `N passed, N failed`.
test: deps lint typecheck tools
	@rm -f $(VITEST_REPORT) $(VITEST_REPORT:.json=.unit.json) $(VITEST_REPORT:.json=.integration.json)
	@status=0; \
	  npx vitest run --project unit --reporter=default --reporter=json --outputFile.json=$(VITEST_REPORT:.json=.unit.json) || status=$$?; \
	  npx vitest run --project integration --reporter=default --reporter=json --outputFile.json=$(VITEST_REPORT:.json=.integration.json) || status=$$?; \
	  $(NODE) hack/test-summary.ts --merge $(VITEST_REPORT) $(VITEST_REPORT:.json=.unit.json) $(VITEST_REPORT:.json=.integration.json); exit $$status

demo: tools-controlplane
	@bash hack/ensure-system.sh prometheus
	@$(NODE) hack/demo.ts

demo-down: deps
	@bin/airollout dev down

# AIROLLOUT_SCALE=quick|off shortens or skips the scale part (it starts the local control plane).
# AIROLLOUT_BENCH_ROUNDS=N sets the gateway part's rounds (default 3); nginx is its peer.
bench: tools-controlplane
	@bash hack/ensure-system.sh nginx
	@bash hack/build-tool.sh vegeta >/dev/null
	@$(NODE) bench/run.ts

clean:
	rm -rf node_modules $(VITEST_REPORT)
