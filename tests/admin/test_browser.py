"""A help-desk admin verifies a device in a real browser: chromium -> live Django -> moto server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from cognito_mfa.models import Enrollment
from tests.support.admin import change_url, make_staff, verify_url
from tests.support.cognito import Pool, fresh_code
from tests.support.services import launched_chromium

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Refreshed with COGNITO_MFA_UPDATE_SCREENSHOTS=1.
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "admin-verify.png"


@pytest.fixture
def chromium() -> Iterator[Any]:
    with launched_chromium() as browser:
        yield browser


def test_help_desk_verifies_a_device_in_the_browser(
    live_server: Any, server_pool: Pool, chromium: Any, tmp_path: Path
) -> None:
    # The user starts an enrollment through the REST API, as the SPA would.
    server_pool.create_user("rita", email="rita@example.com")
    token = server_pool.access_token("rita")
    started = requests.post(
        f"{live_server.url}/api/mfa/enrollments/",
        json={"friendly_device_name": "Rita's phone"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert started.status_code == 201, started.text
    enrollment_id = started.json()["id"]
    secret = started.json()["secret_code"]
    make_staff("helpdesk")

    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(15_000)
    page.goto(f"{live_server.url}/admin/login/?next=/admin/cognito_mfa/enrollment/")
    page.fill("#id_username", "helpdesk")
    page.fill("#id_password", "helpdesk-password-1")
    page.click("input[type=submit]")
    page.wait_for_selector("#result_list")

    # The enrollment's page links to its verify page ...
    page.goto(f"{live_server.url}{change_url(enrollment_id)}")
    assert page.get_attribute(".cognito-mfa-verify-link", "href") == verify_url(enrollment_id)
    page.go_back()
    page.wait_for_selector("#result_list")
    # ... and so does the action: the code is posted to that page only.
    page.check(f"input[name=_selected_action][value='{enrollment_id}']")
    page.select_option("select[name=action]", "verify_device")
    page.click("button[name=index]")
    page.wait_for_selector("#cognito-mfa-verify-form")
    assert page.url == f"{live_server.url}{verify_url(enrollment_id)}"
    assert "rita" in page.inner_text("#cognito-mfa-enrollment-summary")
    assert page.input_value("#id_friendly_device_name") == "Rita's phone"

    page.fill("#id_user_code", fresh_code(secret))
    # The docs' picture is refreshed on request only: a test run leaves the tree clean.
    shot = SCREENSHOT if os.environ.get("COGNITO_MFA_UPDATE_SCREENSHOTS") else tmp_path / "v.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    page.click("#cognito-mfa-verify-form input[type=submit]")

    # Django's way after a form: a redirect to the enrollment's page, with the message.
    page.wait_for_selector("ul.messagelist li.success")
    assert page.url == f"{live_server.url}{change_url(enrollment_id)}"
    message = page.inner_text("ul.messagelist li.success")
    assert "The device of rita is verified and TOTP MFA is on." in message
    assert "verified" in page.inner_text(".field-status")
    # A verified enrollment's page no longer offers the verify page.
    assert page.locator(".cognito-mfa-verify-link").count() == 0
    page.close()

    enrollment = Enrollment.objects.get(pk=enrollment_id)
    assert enrollment.status == "verified"
    assert enrollment.verified_by is not None
    assert enrollment.verified_by.username == "helpdesk"
    state = server_pool.mfa_state("rita")
    assert state["UserMFASettingList"] == ["SOFTWARE_TOKEN_MFA"]
