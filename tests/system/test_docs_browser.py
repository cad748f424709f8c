"""The documentation site as a reader sees it: built from this tree, opened in chromium.

The REST API page must list every operation of the OpenAPI schema the app serves, as the
schema is generated here, independently of the docs build.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.services import launched_chromium, require_service

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
METHODS = ("get", "post", "put", "patch", "delete")


def _sphinx_available() -> bool:
    probe = subprocess.run(
        [sys.executable, "-c", "import sphinx, furo, myst_parser"], capture_output=True
    )
    return probe.returncode == 0


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The docs built as ``make docs`` builds them (warnings are errors), in a temporary folder."""
    require_service("sphinx", _sphinx_available(), "install the docs extra")
    out = tmp_path_factory.mktemp("docs")
    built = subprocess.run(
        [
            *(sys.executable, "-m", "sphinx", "-b", "html", "-W", "--keep-going", "-n", "-q"),
            *("-d", str(out / "doctrees"), str(REPO / "docs"), str(out / "html")),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "HOME": str(out)},
    )
    assert built.returncode == 0, built.stderr[-4000:]
    return out / "html"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launched_chromium() as launched:
        yield launched


def _operations() -> list[str]:
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    return [
        f"{method.upper()} {path}"
        for path, item in schema["paths"].items()
        for method in METHODS
        if method in item
    ]


def test_the_index_links_every_page(site: Path, browser: Any) -> None:
    page = browser.new_page()
    page.goto((site / "index.html").as_uri())
    assert page.title().startswith("cognito_mfa")
    assert page.locator("h1").first.inner_text().startswith("cognito_mfa")
    links = page.locator(".sidebar-tree a.reference").all_inner_texts()
    for title in ("Installation", "Configuration", "REST API", "Signals", "Changelog"):
        assert title in links, links
    assert page.locator("img[src$='demo-qr.png']").first.evaluate("i => i.naturalWidth") > 0
    page.close()


def test_the_api_page_lists_every_operation_of_the_schema(site: Path, browser: Any) -> None:
    operations = _operations()
    assert len(operations) >= 9
    page = browser.new_page()
    page.goto((site / "api.html").as_uri())
    headings = [
        text.rstrip("¶").strip() for text in page.locator("section.openapi-op h3").all_inner_texts()
    ]
    assert headings == operations
    summary = page.locator("table.openapi-operations").inner_text()
    for operation in operations:
        assert operation in summary
    # The summary's links lead to the operations, and the error table is on the same page.
    page.locator("table.openapi-operations a").first.click()
    assert page.url.endswith("#cognito-mfa-challenge-start")
    assert page.locator("text=enrollment_not_pending").first.is_visible()
    page.close()
