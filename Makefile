# Two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat setup.cfg pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install test lint test-quick demo bench bench-scale docs screenshots dist clean

$(STAMP):
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

## Lint, type-check, import layers (lint-imports), migrations check, the docs (make docs), then the whole suite on every supported Python x Django
## pair (noxfile.py; PostgreSQL too when COGNITO_MFA_TEST_POSTGRES_URL is set, required under
## CI=true). One pair: `make test PY=3.13`.
test: $(STAMP) lint docs
	$(BIN)/python noxfile.py $(if $(PY),-t=py$(PY))

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python manage.py makemigrations --check --dry-run --settings=tests.settings

## The suite in the development virtualenv alone (Python and Django of .venv), SQLite.
test-quick: $(STAMP)
	$(BIN)/pytest

## Install, migrate, start the example site on an embedded Cognito (moto) and SQLite.
demo: $(STAMP)
	$(BIN)/python -m example_project.demo

bench: $(STAMP)
	$(BIN)/python bench/run.py

## The admin's pages, the API reads and the cleanup at 10k and 1M enrollments, on a throw-away
## PostgreSQL cluster it starts itself (about 15 minutes; writes bench/scale.json).
bench-scale: $(STAMP)
	$(BIN)/python bench/scale.py

## The documentation site in docs/_build/html: warnings (broken cross-references included) are
## errors; the REST API page is generated from the app's OpenAPI schema. Links to outside
## sites are not checked.
docs: $(STAMP)
	rm -rf docs/_build
	$(BIN)/python -m sphinx -b html -W --keep-going -n -q docs docs/_build/html

## The screenshots in docs/, taken by the browser tests as they drive the example site.
screenshots: $(STAMP)
	COGNITO_MFA_UPDATE_SCREENSHOTS=1 $(BIN)/pytest -q -p no:cacheprovider \
	  tests/system/test_demo_browser.py::test_enroll_by_scanning_the_qr_code_then_turn_totp_off \
	  tests/admin/test_browser.py::test_help_desk_verifies_a_device_in_the_browser

## The sdist and the wheel in dist/, checked as PyPI would check them.
dist: $(STAMP)
	rm -rf dist build
	$(BIN)/python -m build --no-isolation --outdir dist .
	$(BIN)/twine check --strict dist/*

clean:
	rm -rf $(VENV) .nox build dist docs/_build docs/_generated *.egg-info .pytest_cache .mypy_cache .ruff_cache example.sqlite3
