# `make run` and `make test` set everything up on a fresh machine with Python 3.11+.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint browser clean bench

$(VENV)/.installed: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	touch $@

run: $(VENV)/.installed
	$(BIN)/python app.py run --demo

# PostgreSQL for the second pass; an existing database the tests may connect to and
# create their own databases from.
TEST_POSTGRES_URL ?= postgresql://postgres@127.0.0.1:5432/test

test: $(VENV)/.installed-dev browser lint
	$(BIN)/python -m pytest
	@if $(BIN)/python -c "import asyncio, asyncpg, sys; asyncio.run(asyncpg.connect(sys.argv[1], timeout=3))" "$(TEST_POSTGRES_URL)" 2>/dev/null; then \
		echo "PostgreSQL pass: $(TEST_POSTGRES_URL)"; \
		TEST_DATABASE_URL="$(TEST_POSTGRES_URL)" $(BIN)/python -m pytest -m "not database_agnostic"; \
	else \
		echo "SKIPPED the PostgreSQL pass: no PostgreSQL answers at $(TEST_POSTGRES_URL)"; \
	fi

# Benchmarks (measurements, not tests; see bench/README.md): JSON lines on stdout, a summary
# on stderr. BENCH_SIZES=100,1000 for a quick run; the whole set takes about 15-20 minutes.
bench: $(VENV)/.installed-dev
	$(BIN)/python -m bench

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# axe-core for the browser tests' accessibility checks, at package-lock.json's version.
node_modules/.installed: package.json package-lock.json
	npm ci --silent --no-audit --no-fund
	touch $@

# Browser tests use Debian's Chromium when present (Playwright's download needs internet).
browser: $(VENV)/.installed-dev node_modules/.installed
	@if [ -x /usr/bin/chromium ]; then \
		echo "Chromium: /usr/bin/chromium"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else \
		$(BIN)/python -m playwright install chromium; \
	fi

clean:
	rm -rf $(VENV) data .pytest_cache node_modules
