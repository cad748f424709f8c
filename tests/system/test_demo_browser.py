"""The example single-page app in Debian's chromium, against live Django and moto over HTTP.

The QR code on screen is decoded with ``zbarimg`` and must be exactly the ``otpauth_uri`` the
API returned; codes are computed from that secret and checked by moto for real.

``COGNITO_MFA_UPDATE_SCREENSHOTS=1`` also writes the screenshots the README and the docs show
(``docs/demo-qr.png``, ``docs/demo-verified.png``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from cognito_mfa.models import Enrollment
from example_project import settings as example_settings
from example_project.demo import NEW_USER, READY_USER, SeededPool, pool_settings, seed_pool
from tests.support.cognito import fresh_code, moto_server_client, wrong_code
from tests.support.otpauth_readers import read_alike
from tests.support.services import launched_chromium, require_service

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DOCS = Path(__file__).resolve().parents[2] / "docs"
UPDATE_SCREENSHOTS = os.environ.get("COGNITO_MFA_UPDATE_SCREENSHOTS") == "1"
TIMEOUT_MS = 15_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require_service("zbarimg", shutil.which("zbarimg") is not None, "install zbar-tools")
    with launched_chromium() as launched:
        yield launched


@pytest.fixture
def page(browser: Any, live_server: Any) -> Iterator[Any]:
    context = browser.new_context(
        viewport={"width": 1000, "height": 720},
        base_url=live_server.url,
        permissions=["clipboard-read", "clipboard-write"],
    )
    context.set_default_timeout(TIMEOUT_MS)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


@pytest.fixture
def demo_pool(moto_server: str, settings: Any) -> SeededPool:
    """The demo's own pool (same seeding as ``make demo``) and the site pointed at it."""
    client = moto_server_client(moto_server)
    seeded = seed_pool(client)
    for name, value in pool_settings(moto_server, seeded).items():
        setattr(settings, name, value)
    settings.COGNITO_MFA_CHALLENGE_COMPLETE_AUTH = True  # as the demo runs
    settings.COGNITO_MFA_TOTP_ISSUER = example_settings.SITE_NAME
    return seeded


@pytest.fixture
def cognito(moto_server: str) -> Any:
    return moto_server_client(moto_server)


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def sign_in(page: Any, username: str, password: str) -> None:
    page.goto("/")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#sign-in-button")


def decode_qr(page: Any, path: Path) -> str:
    """Screenshot the QR code element and return what zbarimg reads from the pixels."""
    image = page.locator("#qr-code")
    expect(image).to_be_visible()
    page.wait_for_function(
        "() => { const img = document.getElementById('qr-code');"
        " return img.complete && img.naturalWidth > 0; }"
    )
    image.screenshot(path=str(path))
    result = subprocess.run(
        ["zbarimg", "--raw", "-q", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"zbarimg found no QR code: {result.stderr}"
    return result.stdout.rstrip("\n")


def save_screenshot(page: Any, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 0
    if UPDATE_SCREENSHOTS:
        DOCS.mkdir(exist_ok=True)
        shutil.copyfile(path, DOCS / name)


def grouped(secret: str) -> str:
    upper = secret.upper()
    return " ".join(upper[index : index + 4] for index in range(0, len(upper), 4))


def start_enrollment(page: Any) -> Any:
    """Click "Set up" and return the answer to the page's ``POST enrollments/``."""
    with page.expect_response(
        lambda response: (
            urlsplit(response.url).path == "/api/mfa/enrollments/"
            and response.request.method == "POST"
        )
    ) as answer:
        page.click("#start-enrollment")
    return answer.value


def test_enroll_by_scanning_the_qr_code_then_turn_totp_off(
    page: Any, demo_pool: SeededPool, cognito: Any, tmp_path: Path
) -> None:
    sign_in(page, READY_USER.username, READY_USER.password)
    expect(page.locator("#whoami")).to_have_text(READY_USER.username)
    expect(page.locator("#status-totp")).to_have_text("Off")
    expect(page.locator("#turn-off")).to_be_hidden()

    page.fill("#device-name", "Alice's phone")
    answer = start_enrollment(page)
    assert answer.status == 201
    started = answer.json()
    secret = started["secret_code"]
    assert parse_qs(urlsplit(started["otpauth_uri"]).query)["secret"] == [secret]

    # The pixels on screen carry exactly the URI the API returned.
    assert decode_qr(page, tmp_path / "qr.png") == started["otpauth_uri"]
    # Both readers split the label alike: the site's name (no port), then the user's name.
    assert read_alike(started["otpauth_uri"])[:2] == ("cognito_mfa demo", READY_USER.username)
    expect(page.locator("#secret-code")).to_have_text(grouped(secret))
    page.click("#copy-secret")
    expect(page.locator("#copy-status")).to_have_text("Copied.")
    assert page.evaluate("() => navigator.clipboard.readText()") == secret
    save_screenshot(page, tmp_path, "demo-qr.png")

    # A wrong code: a clear message with the attempts left, and the form stays.
    page.fill("#user-code", wrong_code(secret))
    page.click("#verify-button")
    expect(page.locator("#message")).to_contain_text("That code was not accepted")
    expect(page.locator("#message")).to_contain_text("4 attempts left.")
    expect(page.locator("#verify-form")).to_be_visible()

    page.fill("#user-code", fresh_code(secret))
    page.click("#verify-button")
    expect(page.locator("#view-verified")).to_be_visible()
    expect(page.locator("#view-verified h1")).to_have_text("Authenticator verified")
    expect(page.locator("#verified-text")).to_contain_text("set up and preferred")
    save_screenshot(page, tmp_path, "demo-verified.png")

    user = cognito.admin_get_user(UserPoolId=demo_pool.pool_id, Username=READY_USER.username)
    assert user["UserMFASettingList"] == ["SOFTWARE_TOKEN_MFA"]
    assert user["PreferredMfaSetting"] == "SOFTWARE_TOKEN_MFA"
    enrollment = Enrollment.objects.get(pk=started["id"])
    assert (enrollment.status, enrollment.attempts) == ("verified", 1)
    assert enrollment.friendly_device_name == "Alice's phone"

    page.click("#back-to-account")
    expect(page.locator("#status-totp")).to_have_text("On")
    expect(page.locator("#status-preferred")).to_have_text("Yes")
    expect(page.locator("#start-enrollment")).to_have_text("Replace authenticator")

    page.click("#turn-off")
    expect(page.locator("#message")).to_contain_text("turned off")
    expect(page.locator("#status-totp")).to_have_text("Off")
    user = cognito.admin_get_user(UserPoolId=demo_pool.pool_id, Username=READY_USER.username)
    assert "SOFTWARE_TOKEN_MFA" not in user.get("UserMFASettingList", [])

    # The pool requires MFA and the device is verified: signing in again asks for a code.
    page.click("#sign-out")
    sign_in(page, READY_USER.username, READY_USER.password)
    expect(page.locator("#view-mfa-code")).to_be_visible()
    page.fill("#mfa-code", wrong_code(secret))
    page.click("#view-mfa-code button[type=submit]")
    expect(page.locator("#message")).to_contain_text("That code was not accepted")
    page.fill("#mfa-code", fresh_code(secret))
    page.click("#view-mfa-code button[type=submit]")
    expect(page.locator("#view-account")).to_be_visible()
    expect(page.locator("#whoami")).to_have_text(READY_USER.username)
    # Tokens live in the page's memory only.
    assert page.evaluate("() => localStorage.length + sessionStorage.length") == 0


def test_temporary_password_then_mfa_setup_ends_signed_in(
    page: Any, demo_pool: SeededPool, cognito: Any, tmp_path: Path
) -> None:
    sign_in(page, NEW_USER.username, NEW_USER.password)
    expect(page.locator("#view-new-password")).to_be_visible()

    page.fill("#new-password", "short")
    page.click("#view-new-password button[type=submit]")
    expect(page.locator("#message")).to_contain_text("New password:")
    expect(page.locator("#view-new-password")).to_be_visible()

    page.fill("#new-password", "Bob-chosen-Passw0rd")
    with page.expect_response(
        lambda response: urlsplit(response.url).path == "/api/mfa/challenge/enrollments/"
    ) as answer:
        page.click("#view-new-password button[type=submit]")
    assert answer.value.status == 201
    started = answer.value.json()
    assert started["challenge_token"]
    expect(page.locator("#enroll-title")).to_contain_text("finish signing in")
    assert decode_qr(page, tmp_path / "challenge-qr.png") == started["otpauth_uri"]
    assert read_alike(started["otpauth_uri"])[:2] == ("cognito_mfa demo", NEW_USER.username)

    page.fill("#user-code", fresh_code(started["secret_code"]))
    page.click("#verify-button")
    expect(page.locator("#view-account")).to_be_visible()
    expect(page.locator("#message")).to_contain_text("You are signed in")
    expect(page.locator("#whoami")).to_have_text(NEW_USER.username)
    expect(page.locator("#status-totp")).to_have_text("On")

    enrollment = Enrollment.objects.get(pk=started["id"])
    assert (enrollment.flow, enrollment.status) == ("challenge", "verified")
    user = cognito.admin_get_user(UserPoolId=demo_pool.pool_id, Username=NEW_USER.username)
    assert user["UserStatus"] == "CONFIRMED"
    assert user["UserMFASettingList"] == ["SOFTWARE_TOKEN_MFA"]


def test_wrong_password_locked_and_cancelled_enrollments(
    page: Any, demo_pool: SeededPool, settings: Any
) -> None:
    settings.COGNITO_MFA_MAX_ATTEMPTS = 2
    sign_in(page, READY_USER.username, "Not-the-password-1")
    expect(page.locator("#message")).to_have_text("Incorrect username or password.")
    expect(page.locator("#view-sign-in")).to_be_visible()

    sign_in(page, READY_USER.username, READY_USER.password)
    expect(page.locator("#status-totp")).to_have_text("Off")
    page.click("#start-enrollment")
    expect(page.locator("#qr-code")).to_be_visible()
    for remaining in ("1 attempt left.", "the last try"):
        page.fill("#user-code", wrong_code())
        page.click("#verify-button")
        expect(page.locator("#message")).to_contain_text(remaining)
    # Locked: the QR code and key are gone, only "Start again" is offered.
    expect(page.locator("#qr-code")).to_be_hidden()
    expect(page.locator("#secret-code")).to_be_hidden()
    expect(page.locator("#verify-form")).to_be_hidden()
    assert Enrollment.objects.get().status == "locked"

    page.click("#restart-enrollment")
    expect(page.locator("#qr-code")).to_be_visible()
    expect(page.locator("#verify-form")).to_be_visible()
    page.click("#cancel-enrollment")
    expect(page.locator("#view-account")).to_be_visible()
    expect(page.locator("#status-pending-row")).to_be_hidden()
    assert sorted(Enrollment.objects.values_list("status", flat=True)) == ["cancelled", "locked"]


def secret_on_page(page: Any, secret: str) -> list[str]:
    """Where the page still holds the TOTP key or its QR code (hidden elements included)."""
    html = page.content()
    found = [form for form in (secret, secret.upper(), grouped(secret)) if form in html]
    if page.get_attribute("#qr-code", "src"):
        found.append("#qr-code src")
    return found


def test_the_key_and_qr_code_leave_the_page_when_the_enrollment_ends(
    page: Any, demo_pool: SeededPool, settings: Any
) -> None:
    """Shown once means gone from the DOM once the enrollment is over: verified, locked, or
    left by signing out (the next person at this browser must not find it in a hidden view)."""
    settings.COGNITO_MFA_MAX_ATTEMPTS = 1
    sign_in(page, READY_USER.username, READY_USER.password)
    answer = start_enrollment(page)
    secret = answer.json()["secret_code"]
    expect(page.locator("#secret-code")).to_have_text(grouped(secret))
    assert secret_on_page(page, secret) != []

    # Locked by a wrong code: the view closes, and the key is gone with it.
    page.fill("#user-code", wrong_code(secret))
    page.click("#verify-button")
    expect(page.locator("#restart-row")).to_be_visible()
    assert secret_on_page(page, secret) == []

    # Verified.
    page.click("#restart-enrollment")
    expect(page.locator("#secret-code")).to_have_text(grouped(secret))
    page.fill("#user-code", fresh_code(secret))
    page.click("#verify-button")
    expect(page.locator("#view-verified")).to_be_visible()
    assert secret_on_page(page, secret) == []

    # Signed out in the middle of an enrollment.
    page.click("#back-to-account")
    expect(page.locator("#status-totp")).to_have_text("On")
    page.click("#start-enrollment")
    expect(page.locator("#secret-code")).to_have_text(grouped(secret))
    page.click("#sign-out")
    expect(page.locator("#view-sign-in")).to_be_visible()
    assert secret_on_page(page, secret) == []


def test_a_start_refused_while_the_older_code_is_being_checked_says_to_try_again(
    page: Any, demo_pool: SeededPool, settings: Any
) -> None:
    """On a start, 409 ``enrollment_not_pending`` means the older enrollment's verify is still
    running (another tab or a double submit): the page must say "try again in a moment", not
    that a setup was finished or cancelled."""
    sign_in(page, READY_USER.username, READY_USER.password)
    page.click("#start-enrollment")
    expect(page.locator("#qr-code")).to_be_visible()
    # That tab is verifying a code: its request holds the lease while Cognito answers.
    Enrollment.objects.filter(status="pending").update(
        verify_lease_until=Enrollment.objects.get().expires_at
    )

    other_tab = page.context.new_page()
    sign_in(other_tab, READY_USER.username, READY_USER.password)
    expect(other_tab.locator("#status-pending-row")).to_be_visible()
    # A short verify lease (5 s), so the start gives up waiting well within the page's timeout.
    # Set only now: the sign-ins above run on the usual timeouts, which a loaded machine needs.
    # The start's own key request still has 2 s to be answered.
    settings.COGNITO_MFA_CONNECT_TIMEOUT = 1.0
    settings.COGNITO_MFA_READ_TIMEOUT = 2.0
    settings.COGNITO_MFA_MAX_RETRY_ATTEMPTS = 1
    answer = start_enrollment(other_tab)
    assert (answer.status, answer.json()["code"]) == (409, "enrollment_not_pending")
    expect(other_tab.locator("#message")).to_contain_text("Try again in a moment")


def test_the_hard_limit_sends_the_user_to_the_help_desk(page: Any, demo_pool: SeededPool) -> None:
    """Past ``COGNITO_MFA_FAILURE_HARD_LIMIT`` waiting does not help: the page must say so
    rather than count down a ``Retry-After`` that will only be refused again."""
    from cognito_mfa.conf import app_settings
    from cognito_mfa.models import FailureCounter

    FailureCounter.objects.create(
        cognito_username=READY_USER.username,
        consecutive_failures=app_settings.FAILURE_HARD_LIMIT,
    )
    sign_in(page, READY_USER.username, READY_USER.password)
    answer = start_enrollment(page)
    assert answer.status == 429
    assert answer.json()["reset_required"] is True
    expect(page.locator("#message")).to_contain_text("ask the help desk")
    expect(page.locator("#message")).not_to_contain_text("Please wait")
