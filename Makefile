# Two commands matter (README.md): `make run` and `make test`. Everything else is a named extra.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench bench-core bench-availability bench-acp bench-scale bench-ingest bench-referrals wrk chromium clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)  ## the hub on its embedded default (SQLite, in-process tasks) with the demo region
	$(BIN)/hub serve --demo --host 127.0.0.1 --port 8000

chromium:  ## Debian's Chromium for the browser tests (Playwright drives it; it never downloads a browser)
	@(command -v chromium && command -v docker-compose && command -v wrk) >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver docker-compose wrk >/dev/null)

test: $(STAMP) chromium  ## the whole suite against real PostgreSQL + Redis (127.0.0.1; HUB_TEST_PG / HUB_TEST_REDIS)
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check hub adapters tests bench
	$(BIN)/mypy hub adapters

wrk:  ## the HTTP load generator the benchmarks use (Debian package)
	@command -v wrk >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null)

bench: bench-core bench-availability bench-acp bench-scale bench-ingest bench-referrals  ## all benchmarks (ratios against same-run baselines)

bench-core: $(STAMP) wrk  ## FHIR core vs minimal FastAPI, SQLite and PostgreSQL (issue 3)
	$(BIN)/python -m bench.core

bench-availability: $(STAMP) wrk  ## availability query vs Redis HGETALL, 500x6 vs 5 providers, bed updates (issue 4)
	$(BIN)/python -m bench.availability

bench-acp: $(STAMP)  ## $$acp-summary vs plain GET with 1,000 patients (issue 7)
	$(BIN)/python -m bench.acp

bench-scale: $(STAMP) wrk  ## 1 vs 2 API processes, reads and bed-status writes (issue 8)
	$(BIN)/python -m bench.scale

clean:
	rm -rf $(VENV) zorgnet.db zorgnet.db-*

bench-ingest: $(STAMP)  ## HL7 v2 via MLLP and bed CSV into the store vs bare parsing (issue 5)
	$(BIN)/python -m bench.ingest

bench-referrals: $(STAMP)  ## request -> first offer vs bare Celery enqueue -> start; referrals/s (issue 6)
	$(BIN)/python -m bench.referrals
