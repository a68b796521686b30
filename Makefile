# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Debian packages the full test suite needs (installed when missing, as root).
TEST_PACKAGES := pkg-config libmariadb-dev mariadb-server mariadb-client redis-server chromium fonts-dejavu-core fonts-noto-color-emoji nginx-light strace
# Only what the app itself needs: nothing for `make run`.

.PHONY: run test lint check-migrations test-sqlite test-mariadb bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed-base: requirements/base.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements/base.txt
	touch $@

$(VENV)/.installed-test: requirements/base.txt requirements/production.txt requirements/test.txt | $(BIN)/python
	.ci/system-packages $(TEST_PACKAGES)
	$(BIN)/pip install --quiet -r requirements/test.txt
	touch $@ $(VENV)/.installed-base

## make run: set up and serve the site on http://127.0.0.1:8000/ with the embedded defaults.
run: $(VENV)/.installed-base
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py ensure_admin
	$(BIN)/python manage.py add_sample_albums
	$(BIN)/python manage.py fetch_tweets
	@echo "Serving http://127.0.0.1:8000/ ; fetch_tweets --loop keeps fetching due albums in the background."
	$(BIN)/python manage.py fetch_tweets --loop --verbosity 0 & loop=$$!; \
	trap 'kill $$loop 2>/dev/null' EXIT INT TERM; \
	$(BIN)/python manage.py runserver 127.0.0.1:8000

## make test: lint, migrations check, the whole suite on SQLite and on MariaDB.
test: $(VENV)/.installed-test
	$(MAKE) lint check-migrations test-sqlite test-mariadb

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

check-migrations: $(VENV)/.installed-test
	$(BIN)/python manage.py makemigrations --check --dry-run

test-sqlite: $(VENV)/.installed-test
	@echo "== Test suite on SQLite =="
	$(BIN)/pytest

test-mariadb: $(VENV)/.installed-test
	@echo "== Test suite on MariaDB =="
	.ci/with-mariadb $(BIN)/pytest

## make bench: the benchmarks whose figures are in docs/benchmarks.md (loopback servers only).
bench: $(VENV)/.installed-test
	$(BIN)/python -m bench.ingest
	$(BIN)/python -m bench.dedupe_speed
	$(BIN)/python -m bench.dedupe_eval
	$(BIN)/python -m bench.dedupe_eval --reversed
	$(BIN)/python -m bench.dedupe_eval --visibility
	$(BIN)/python -m bench.dedupe_eval --resizers
	$(BIN)/python -m bench.colour_profiles
	$(BIN)/python -m bench.collage
	$(BIN)/python -m bench.api
	$(BIN)/python -m bench.pages
	$(BIN)/python -m bench.wall
	$(BIN)/python -m bench.production

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
