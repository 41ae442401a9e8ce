# duplexbench: `make bench` measures, `make test` checks. Both set the machine up on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SCENARIO ?= scenarios/quick.toml
BASELINE ?= results/baselines/ci
# e.g. COMPARE_FLAGS=--normalize when the baseline came from another machine
COMPARE_FLAGS ?=
# make stacks STACKS_SCENARIO=scenarios/stacks-quick.toml for a quick side-by-side check
STACKS_SCENARIO ?= scenarios/stacks.toml
# make capacity-subscribers: the publish rate held while subscribers are stepped (the
# websocket-shootout setting of issue 15 and the README table is 1 msg/s)
CAPSUB_RATE ?= 1
# A/B mode: `make ci-bench BASE=origin/main` (any commit-ish) runs BASE's servers and this
# tree's, interleaved, with this tree's load generator (docs/regression.md); e.g.
# AB_FLAGS="--repeats 6" or AB_FLAGS="--transports sse,websocket".
BASE ?=
AB_FLAGS ?=
AB_OUT ?= results/ci-ab
# make reproduce: RUNS complete runs of SCENARIO, every finding checked against the other
# runs (docs/DESIGN.md, "Confidence"); e.g. REPRODUCE_FLAGS="--lock /tmp/cpu.lock".
RUNS ?= 5
REPRODUCE_FLAGS ?=
# The install stamps re-run pip only when the dependencies change: the harness's own
# (`make bench` needs no more) and the test tools' (pytest, hypothesis, ipykernel...: 14 s more
# of a fresh clone's set-up, on top of the harness's 44 s, measured 2026-12-07).
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
# The set-up of what the suite starts besides Python (duplexbench/machine/setup.py): the
# missing Debian programs (nginx, Chromium, curl, Node.js/npm, Redis, gcc; all of them, or
# those --scenario FILE / --need KEY ask for) through apt as root, `apt-get update` once and
# only when one is missing; not root: one line names the command. A presence check, no stamp:
# it is as fast and sees an `apt-get remove`.
PARTS = @$(PY) -m duplexbench doctor --install
# npm writes this file at each `npm ci`: the Node reference's packages are re-installed only
# when its package files change.
NODE_STAMP := servers/node/node_modules/.package-lock.json

.PHONY: install setup node-modules doctor bench reproduce report test notebook ci-bench gate-power baseline capacity capacity-subscribers c10k engines floor claims soak faults scaleout fuzz node stacks clean help

help:
	@echo "make bench      run scenarios/quick.toml on all transports, print the table, write the report"
	@echo "make test       run the test suite (sets up everything it starts: make setup)"
	@echo "make setup      .venv, Debian's nginx/Chromium/curl/Node.js/Redis/gcc (apt, as root), npm ci"
	@echo "make doctor     one line per capability of this machine: what was found, the fix"
	@echo "make reproduce  RUNS (default 5) runs of SCENARIO: does every finding hold in the other runs?"
	@echo "make notebook   open notebooks/analysis.ipynb in Jupyter Lab"
	@echo "make ci-bench BASE=origin/main   A/B gate: BASE's and this tree's servers interleaved (exit 1 on regression)"
	@echo "make ci-bench   run scenarios/ci.toml and compare with $(BASELINE) (exit 1 on regression)"
	@echo "make gate-power how often the A/B gate flags known injected changes (GATE_POWER_RUNS rounds, resumable)"
	@echo "make baseline   refresh $(BASELINE) from a fresh ci run"
	@echo "make capacity   highest delivery rate per transport with p99 under 100 ms"
	@echo "make engines    native engine vs Locust: client CPU per 1,000 delivered messages;"
	@echo "                native WebSocket latency vs a minimal compiled client (10, 50 subscribers)"
	@echo "make floor      the native engine beside a C reader that only reads (the kernel's floor), per transport"
	@echo "make claims     the RFC 6202 / RFC 6455 claims, measured (about 11 minutes)"
	@echo "make node       install the Node.js reference server (servers/node, npm ci)"
	@echo "make stacks     $(STACKS_SCENARIO) on the aiohttp servers and the Node reference, side by side"
	@echo "make capacity-subscribers   most subscribers per transport at CAPSUB_RATE msg/s (default 1) with p95 under 500 ms"
	@echo "make c10k       10,000 subscribers per transport: KiB per held connection, CPU per message"
	@echo "make fuzz       malformed requests and frames per transport at a server (< 60 s)"
	@echo "make faults     restart (SIGTERM, SIGKILL) and cut on every transport: recovery and loss (~3 min)"
	@echo "make scaleout   one process vs workers behind Redis per transport, then a worker killed (~4 min)"
	@echo "make soak       every transport for SOAK_S s each (default 600): RSS and open files judged"

install: $(STAMP)

# The read loop (clients/readloop.c) is built by pip when a C compiler is there; on a
# machine that had none at install time, it is built once the set-up has installed gcc.
setup: install $(TEST_STAMP)
	$(PARTS)
	@$(PY) -c "from clients.readloop import ReadStore" 2>/dev/null || $(PY) -m pip install --quiet --no-deps -e .
	@$(MAKE) --no-print-directory node-modules

doctor: install
	$(PY) -m duplexbench doctor

$(STAMP): pyproject.toml setup.py clients/readloop.c clients/readstore.c clients/readstore.h
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $(STAMP)

$(TEST_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(TEST_STAMP)

bench: install
	$(PARTS) --scenario $(SCENARIO)
	$(PY) -m duplexbench run $(SCENARIO)

report: install
	$(PY) -m duplexbench report results/latest

reproduce: install
	$(PARTS) --scenario $(SCENARIO)
	$(PY) -m duplexbench reproduce $(SCENARIO) --runs $(RUNS) $(REPRODUCE_FLAGS)

# Four workers (pytest-xdist) on two cores: most tests wait on sockets and children (the suite uses
# ~1.6 of the 2 cores: on one 2-core machine 4 workers took 502-517 s where 3 took 527-531 s); tests/conftest.py
# keeps a module on one worker and runs the tests marked exclusive alone, first. TEST_FLAGS= runs serially.
# --durations: the slowest tests are printed at the end (the suite aims at 8 minutes on 2 cores).
# Bytecode is written even where PYTHONDONTWRITEBYTECODE is set (containers often set it): the
# suite starts hundreds of Python processes, and each would compile every module again.
TEST_FLAGS ?= -n 4 --durations=25
test: setup
	env -u PYTHONDONTWRITEBYTECODE $(PY) -m pytest -q $(TEST_FLAGS)

notebook: install
	$(PY) -m pip install --quiet -e ".[notebook]"
	$(VENV)/bin/jupyter lab notebooks/analysis.ipynb

# With BASE: the A/B gate (scenarios/ab.toml, ~3 minutes; results, compare.md and
# compare.json in $(AB_OUT)). Without: the committed baseline, for local use.
ci-bench: install
ifneq ($(strip $(BASE)),)
	$(PARTS) --scenario scenarios/ab.toml
	rm -rf $(AB_OUT)
	$(PY) -m duplexbench ab $(BASE) --out $(AB_OUT) $(AB_FLAGS)
else
	$(PARTS) --scenario scenarios/ci.toml
	rm -rf results/ci-current
	$(PY) -m duplexbench run scenarios/ci.toml --out results/ci-current --no-report
	$(PY) -m duplexbench compare $(BASELINE) results/ci-current --markdown results/ci-current/compare.md $(COMPARE_FLAGS)
endif

# The A/B gate's measured power (docs/regression.md): GATE_POWER_RUNS rounds of A/A and known
# injections (CPU, delay, pad) into GATE_POWER_OUT; resumes what is there. On a shared machine
# one round per lock hold: GATE_POWER_FLAGS="--stop-after 1" in a loop around flock.
GATE_POWER_RUNS ?= 10
GATE_POWER_OUT ?= results/gate-power
GATE_POWER_FLAGS ?=
gate-power: install
	$(PY) -m duplexbench gate-power --runs $(GATE_POWER_RUNS) --out $(GATE_POWER_OUT) --resume $(GATE_POWER_FLAGS)

baseline: install
	$(PARTS) --scenario scenarios/ci.toml
	rm -rf $(BASELINE)
	$(PY) -m duplexbench run scenarios/ci.toml --out $(BASELINE) --no-report --baseline

capacity: install
	$(PY) -m duplexbench capacity

# The websocket-shootout method: fixed rate, subscribers doubled from 1,000 (long: minutes).
capacity-subscribers: install
	$(PY) -m duplexbench capacity --by subscribers --rate $(CAPSUB_RATE)

c10k: install
	$(PARTS) --scenario scenarios/c10k.toml
	$(PY) -m duplexbench run scenarios/c10k.toml

engines: install
	$(PARTS) --scenario scenarios/fanout.toml
	$(PY) -m duplexbench engines scenarios/fanout.toml
	$(PY) -m duplexbench engines --latency

# The native engine against tools/floor's C reader at make bench's 50-subscriber point
# (FLOOR_FLAGS="--repeats 3", "--transports sse,websocket"; "--tally results/floor-*": how many
# invocations met the target); docs/engine-cost.md.
FLOOR_FLAGS ?=
floor: install
	$(PARTS) --need cc
	$(PY) -m duplexbench engines --floor $(FLOOR_FLAGS)

# FUZZ_FLAGS=--url http://127.0.0.1:8080 fuzzes a running server instead of starting one
FUZZ_FLAGS ?=
fuzz: install
	$(PY) -m duplexbench fuzz $(FUZZ_FLAGS)

# Three runs, one report: the transit claims need delays, the header claims payload sweeps,
# the client-frame claims messages sent up the WebSocket itself.
claims: install
	$(PARTS) --scenario scenarios/rfc6202.toml --scenario scenarios/overhead.toml --scenario scenarios/frames.toml
	rm -rf results/claims-rfc6202 results/claims-overhead results/claims-frames
	$(PY) -m duplexbench run scenarios/rfc6202.toml --out results/claims-rfc6202 --no-report
	$(PY) -m duplexbench run scenarios/overhead.toml --out results/claims-overhead --no-report
	$(PY) -m duplexbench run scenarios/frames.toml --out results/claims-frames --no-report
	$(PY) -m duplexbench report results/claims-rfc6202 results/claims-overhead results/claims-frames --out results/claims-report
	@echo "claims report: results/claims-report/report-side-by-side.html"

# Faults as scenarios (docs/DESIGN.md "Faults and soak").
faults: install
	$(PARTS) --scenario scenarios/faults.toml
	rm -rf results/faults
	$(PY) -m duplexbench run scenarios/faults.toml --out results/faults

# Workers behind Redis (docs/scaleout.md): the broker's cost per transport, then a killed worker.
scaleout: install
	$(PARTS) --scenario scenarios/scaleout.toml --scenario scenarios/scaleout-faults.toml
	rm -rf results/scaleout results/scaleout-faults
	$(PY) -m duplexbench run scenarios/scaleout.toml --out results/scaleout
	$(PY) -m duplexbench run scenarios/scaleout-faults.toml --out results/scaleout-faults

# SOAK_S seconds of measurement per transport. The verdict runs even when the run itself
# reports lost messages (exit 3): judging them is the verdict's job, and its exit code is make's.
SOAK_S ?= 600
soak: install
	$(PARTS) --scenario scenarios/soak.toml
	rm -rf results/soak
	-$(PY) -m duplexbench run scenarios/soak.toml --duration $(SOAK_S) --out results/soak
	$(PY) -m duplexbench soak results/soak

# The Node.js reference server (a second stack): Node.js from apt where missing (as root),
# then its own dependency, npm's lock file pinned. Without npm, the set-up's line said what to
# run and the Node reference tests skip saying why; a failed `npm ci` says so the same way.
node: install
	$(PARTS) --need node
	@$(MAKE) --no-print-directory node-modules

node-modules:
	@if command -v npm >/dev/null 2>&1; then $(MAKE) -s --no-print-directory $(NODE_STAMP) || \
	  echo "duplexbench set-up: npm ci in servers/node failed: the Node reference is unavailable (retry: make node)"; fi

$(NODE_STAMP): servers/node/package.json servers/node/package-lock.json
	npm ci --prefix servers/node --no-audit --no-fund

stacks: node
	$(PARTS) --scenario $(STACKS_SCENARIO)
	$(PY) -m duplexbench stacks $(STACKS_SCENARIO)

clean:
	rm -rf $(VENV) build *.egg-info
