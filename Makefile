# castmesh — the two commands a fresh machine needs are `make run` and `make test`.
# Both install what is missing (Debian packages) before building.

CARGO ?= cargo
# Tests start the release binaries the build already made; one profile, one build.
PROFILE := --release
APT_INSTALL := DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test sim deps screenshots test-deps build operator-bin lint bench bench-media bench-raft bench-cluster bench-mesh bench-api bench-chat bench-restream bench-viewers bench-serve bench-deps serve-deps fuzz fmt clean cluster cluster-stop nginx-deps

## Run one node with embedded defaults and open publishing (--dev).
run: deps
	$(CARGO) run $(PROFILE) --bin castmesh -- --dev

BIN_DIR = $(or $(CARGO_TARGET_DIR),target)/release

## A local three-node cluster on 127.0.0.1/.2/.3 (configs/cluster-3), in the background.
cluster: deps
	$(CARGO) build $(PROFILE) --bin castmesh --bin castctl
	configs/cluster-3/cluster.sh start $(BIN_DIR)

cluster-stop:
	configs/cluster-3/cluster.sh stop

## Everything CI checks: formatting, lints, unit tests, end-to-end tests with real
## clients, the simulation's determinism and bug-finding tests, and a seed sweep.
test: test-deps lint operator-bin build
	$(CARGO) test $(PROFILE) --workspace
	$(MAKE) sim

## The cluster simulation (docs/simulation.md): seeds 0..SEEDS, with a progress line
## and a summary; a failing seed prints its faults and the command that replays it.
## `make sim SEEDS=100000` for a long run.
SEEDS ?= 400
sim: build
	$(CARGO) run $(PROFILE) -p simulations --bin castmesh-sim -- --media --seeds 0..$(SEEDS) $(SIM_ARGS)

## The pictures of the web app in docs/screenshots, taken by its browser tests
## (tests/tests/web_app.rs) in headless Chromium against real nodes.
screenshots: test-deps build
	CASTMESH_SCREENSHOTS=$(CURDIR)/docs/screenshots $(CARGO) test $(PROFILE) --workspace --test web_app

## What building and the README's quick start need: libclang (rocksdb's bindings are
## generated at build time by bindgen), ffmpeg (to publish a test stream) and hls.js,
## which the node embeds for its watch page: `npm ci` installs the version
## node/web/package-lock.json pins and checks its integrity hash (again whenever the
## lock file is newer than the installed copy).
## libclang is looked for as bindgen loads it: `libclang.so*` or `libclang-N.so*`, plus
## clang's own headers (stddef.h). `libclang-cpp.so` (pulled in by llvm) is a different
## library and does not count.
deps:
	@missing=""; \
	command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || missing="$$missing ffmpeg"; \
	[ -n "$$LIBCLANG_PATH" ] || { \
		ls /usr/lib/llvm-*/lib/libclang.so* /usr/lib/*/libclang-[0-9]*.so* >/dev/null 2>&1 && \
		ls /usr/lib/llvm-*/lib/clang/*/include/stddef.h >/dev/null 2>&1; } || missing="$$missing libclang-dev"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -qq && $(SUDO) $(APT_INSTALL) $$missing; \
	fi
	@[ node/web/node_modules/.package-lock.json -nt node/web/package-lock.json ] || \
		(cd node/web && npm ci --no-audit --no-fund)

## Also what the tests need: nginx-rtmp (restream destinations), Chromium and hls.js
## (npm, pinned by the lock file) for the browser viewer test; Python's gRPC reflection client (grpcurl is not packaged for
## Debian 12) for the reflection test.
test-deps: deps nginx-deps
	@command -v chromium >/dev/null || { echo "installing: chromium"; \
		$(SUDO) apt-get update -qq && $(SUDO) $(APT_INSTALL) chromium; }
	@python3 -c "import grpc_reflection" 2>/dev/null || { echo "installing: grpcio-reflection"; \
		python3 -m pip --version >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && $(SUDO) $(APT_INSTALL) python3-pip; }; \
		python3 -m pip install -q --break-system-packages grpcio-reflection==1.85.1 2>/dev/null || \
		python3 -m pip install -q grpcio-reflection==1.85.1; }
	@[ -d tests/browser/node_modules ] || (cd tests/browser && npm ci --no-audit --no-fund)

## --all-targets: the same feature resolution as clippy and cargo test (dev-dependencies
## included), so rocksdb's C++ is compiled once, not once per resolution.
## Cargo unifies features across the workspace: the simulation asks for castmesh-node's
## `test-hooks`, so the castmesh built here (the one the process tests run) has fault
## injection. An operator's node is built as the README says (operator-bin).
build: deps
	$(CARGO) build $(PROFILE) --workspace --all-targets

## The node as an operator builds it (README): the castmesh-node package alone, so
## without test-hooks. Copied to $(BIN_DIR)/operator/ for tests/tests/safe_defaults.rs;
## `build` runs after it and puts the test build's castmesh back in $(BIN_DIR).
OPERATOR_BIN = $(BIN_DIR)/operator/castmesh
operator-bin: deps
	$(CARGO) build $(PROFILE) -p castmesh-node --bin castmesh
	mkdir -p $(dir $(OPERATOR_BIN))
	cp $(BIN_DIR)/castmesh $(OPERATOR_BIN)

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy $(PROFILE) --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## Every benchmark (figures in docs/benchmarks.md). Not part of `make test`.
## They run the binaries `build` made: `cargo run -p castmesh-tests` would resolve
## features for that package alone and compile rocksdb's C++ a second time.
bench: bench-media bench-raft bench-cluster bench-mesh bench-api bench-chat bench-restream bench-viewers bench-serve

## The media path against nginx-rtmp.
bench-media: deps bench-deps build
	$(BIN_DIR)/castmesh-bench $(BENCH_ARGS)

## Raft metadata writes per second (1 and 64 clients) against fsync'd RocksDB writes.
bench-raft: deps build
	$(BIN_DIR)/castmesh-raft-bench $(BENCH_ARGS)

## Real node processes: kill -9 of the leader → first write (median of 10), and a new
## node joining a cluster holding 100k streams.
bench-cluster: deps build
	$(BIN_DIR)/castmesh-cluster-bench $(BENCH_ARGS)

## The media mesh: edge added latency (1 and 50 streams), origin egress with 1 and 3
## edges of 100 readers, republish on a new origin → first part on an edge.
bench-mesh: deps build
	$(BIN_DIR)/castmesh-mesh-bench $(BENCH_ARGS)

## The REST API: sign-ins per second (1 and 16 clients) against the argon2id hash
## alone, and the cluster-wide stream listing against /healthz.
bench-api: deps build
	$(BIN_DIR)/castmesh-api-bench $(BENCH_ARGS)

## Chat: delivery latency with 1,000 watch sockets on the origin and 500 on another
## node, 20 lines a second, against a WebSocket echo on the same machine.
bench-chat: deps build
	$(BIN_DIR)/castmesh-chat-bench $(BENCH_ARGS)

## Restreaming: castmesh's CPU per destination (1, 5, 10) against one
## `ffmpeg -c copy` process per destination (the seed's way), and the latency a frame
## gains from the publisher to a destination.
bench-restream: deps bench-deps build
	$(BIN_DIR)/castmesh-restream-bench $(BENCH_ARGS)

## LL-HLS viewers (blocking reloads, parts) of one low-bitrate stream on one node, from
## a Rust load generator on the same machine (issue 17): requests/s, errors, missed
## parts, fan-out spread, the node's and the generator's CPU and memory; then nginx
## serving the same stream as files to as many polling viewers (the reference).
bench-viewers: deps build
	$(BIN_DIR)/castmesh-viewers-bench $(BENCH_ARGS)

## Serving: castmesh against nginx (static files) on the same objects of a live stream
## (media playlist, with and without gzip, a part, a segment), wrk on the same machine.
bench-serve: deps serve-deps build
	$(BIN_DIR)/castmesh-serve-bench $(BENCH_ARGS)

## Fuzzing, not part of `make test` (figures in docs/security.md): cargo fuzz on the
## stable toolchain, FUZZ_MINUTES in all spread over the targets by risk (node/fuzz/run.sh),
## its own target directory. `make test` replays the kept corpus and crashers.
FUZZ_MINUTES ?= 60
fuzz: deps build
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked --version 0.13.1
	@[ -d node/fuzz/seeds ] || python3 node/fuzz/make_seeds.py $(BIN_DIR)/castmesh
	CARGO_TARGET_DIR=$(or $(CARGO_TARGET_DIR),$(CURDIR)/target)/fuzz node/fuzz/run.sh $(FUZZ_MINUTES) $(FUZZ_TARGETS)

## nginx with its RTMP module (the benchmarks' reference server, and a restream
## destination in the tests) and its stream module (a TLS terminator in front of it:
## an rtmps:// destination).
bench-deps nginx-deps:
	@if [ ! -e /usr/lib/nginx/modules/ngx_rtmp_module.so ] || [ ! -e /usr/lib/nginx/modules/ngx_stream_module.so ]; then \
		echo "installing nginx + libnginx-mod-rtmp + libnginx-mod-stream"; \
		$(SUDO) apt-get update -qq && $(SUDO) $(APT_INSTALL) nginx-light libnginx-mod-rtmp libnginx-mod-stream; \
	fi

## nginx (the static file server of bench-serve) and wrk.
serve-deps: bench-deps
	@command -v wrk >/dev/null || { echo "installing wrk"; $(SUDO) apt-get update -qq && $(SUDO) $(APT_INSTALL) wrk; }

clean:
	$(CARGO) clean
