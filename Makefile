# Two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat setup.cfg pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install test lint test-sqlite test-postgres demo bench bench-scale clean

$(STAMP):
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

## Lint, type-check, migrations check, then the whole suite (SQLite, and PostgreSQL when
## COGNITO_MFA_TEST_POSTGRES_URL is set; under CI=true PostgreSQL is required).
test: $(STAMP) lint test-sqlite test-postgres

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python manage.py makemigrations --check --dry-run --settings=tests.settings

test-sqlite: $(STAMP)
	$(BIN)/pytest

test-postgres: $(STAMP)
	@if [ -n "$$COGNITO_MFA_TEST_POSTGRES_URL" ]; then \
	  echo "== the suite again on PostgreSQL =="; \
	  COGNITO_MFA_TEST_DATABASE_URL="$$COGNITO_MFA_TEST_POSTGRES_URL" $(BIN)/pytest -m "not browser and not multiprocess"; \
	elif [ "$$CI" = "true" ]; then \
	  echo "CI=true: PostgreSQL is required; set COGNITO_MFA_TEST_POSTGRES_URL" >&2; exit 1; \
	else \
	  echo "PostgreSQL pass skipped: set COGNITO_MFA_TEST_POSTGRES_URL=postgres://user@host:port/db to run it"; \
	fi

## Install, migrate, start the example site on an embedded Cognito (moto) and SQLite.
demo: $(STAMP)
	$(BIN)/python -m example_project.demo

bench: $(STAMP)
	$(BIN)/python bench/run.py

## The admin's pages, the API reads and the cleanup at 10k and 1M enrollments, on a throw-away
## PostgreSQL cluster it starts itself (about 15 minutes; writes bench/scale.json).
bench-scale: $(STAMP)
	$(BIN)/python bench/scale.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache example.sqlite3
