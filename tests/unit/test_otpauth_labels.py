"""Authenticator labels as real readers split them: two independent parsers (pyotp, the npm
``otpauth`` package) read the URIs the API returns, agree on issuer and account for names with
``:``, ``&``, ``/``, ``?``, ``#``, spaces, non-ASCII and e-mail addresses, and Cognito (moto,
checking codes) accepts the code each of them computes."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ObjectDoesNotExist
from rest_framework.test import APIClient

from cognito_mfa import otpauth
from cognito_mfa.adapter import DefaultAdapter
from cognito_mfa.checks import check_settings
from tests.support.challenge import mfa_setup_session, start, verify
from tests.support.cognito import MOTO_SECRET, Pool, TestAdapter, totp_code
from tests.support.otpauth_readers import Reading, read_with_node, read_with_pyotp

BASE = "/api/mfa/"
COGNITO_SIZED_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXPJBSW"

# issuer, account as the adapter returns it, account as every reader must show it
LABELS = {
    "colon in issuer": ("Ärzte & Co: Berlin", "bernd", "bernd"),
    "colons everywhere": ("a:b:c", "dom:ain\\user", "dom\uff1aain\\user"),
    "reserved characters": ("R&D / Labs? #1", "x&y/z?q#f", "x&y/z?q#f"),
    "e-mail, non-ASCII": ("Zoë — Staging", "jürgen.müller+mfa@example.org", None),
    "spaces": (" Spaced  Issuer ", "  Bernd Müller  ", "Bernd Müller"),
    "percent signs": ("100% sure", "50%3A50", "50%3A50"),
}


def _readings(uri: str, at: float) -> tuple[Reading, Reading]:
    (by_node,) = read_with_node([uri], at)
    return read_with_pyotp(uri, at), by_node


def _with_margin(seconds: float = 4.0) -> float:
    """Now, at least ``seconds`` before the 30-s step ends (moto takes only the current one)."""
    if time.time() % 30 > 30 - seconds:
        time.sleep(30 - time.time() % 30 + 0.05)
    return time.time()


@pytest.mark.parametrize("case", list(LABELS))
@pytest.mark.parametrize("secret", [MOTO_SECRET, COGNITO_SIZED_SECRET], ids=["moto", "cognito"])
def test_both_readers_split_the_label_alike(case: str, secret: str) -> None:
    issuer, account, shown = LABELS[case]
    uri = otpauth.build_otpauth_uri(secret=secret, issuer=issuer, account=account)
    at = time.time()
    by_pyotp, by_node = _readings(uri, at)
    assert by_pyotp == by_node == Reading(issuer, shown or account, totp_code(secret, at))
    label = unquote(urlsplit(uri).path[1:])
    assert label.count(":") == (0 if ":" in issuer else 1)
    assert parse_qs(urlsplit(uri).query)["issuer"] == [issuer]  # the parameter stays exact


def test_the_label_keeps_the_issuer_prefix_when_it_can() -> None:
    uri = otpauth.build_otpauth_uri(secret=MOTO_SECRET, issuer="Example Site", account="a:b")
    assert (
        uri == "otpauth://totp/Example%20Site:a%EF%BC%9Ab?secret=asdfasdfasdf&issuer=Example%20Site"
    )


# --- through the API, codes checked by Cognito ---------------------------------------------------


def _site_user(username: str, email: str = "") -> Any:
    return get_user_model().objects.create(username=username, email=email)


@pytest.mark.django_db
@pytest.mark.parametrize("case", list(LABELS))
def test_the_api_uris_read_alike_and_each_readers_code_verifies(
    pool: Pool, settings: Any, case: str
) -> None:
    issuer, _, _ = LABELS[case]
    settings.COGNITO_MFA_TOTP_ISSUER = issuer
    started, clients = {}, {}
    for reader in ("pyotp", "node"):
        username = f"{reader}-{case.replace(' ', '-').replace(',', '')}"
        pool.create_user(username)
        # The site user's e-mail is the label: one with every character that needs care.
        _site_user(username, email=f"{reader}.jürgen+a&b/c?d#e@example.org")
        clients[reader] = APIClient()
        clients[reader].credentials(HTTP_AUTHORIZATION=f"Bearer {pool.access_token(username)}")
        response = clients[reader].post(BASE + "enrollments/", {}, format="json")
        assert response.status_code == 201, response.content
        started[reader] = response.json()
    at = _with_margin()
    for reader, body in started.items():
        by_pyotp, by_node = _readings(body["otpauth_uri"], at)
        assert by_pyotp == by_node
        assert (by_pyotp.issuer, by_pyotp.account) == (
            issuer,
            f"{reader}.jürgen+a&b/c?d#e@example.org",
        )
        code = (by_pyotp if reader == "pyotp" else by_node).code
        verified = clients[reader].post(
            f"{BASE}enrollments/{body['id']}/verify/", {"user_code": code}, format="json"
        )
        assert verified.status_code == 200, (reader, verified.content)
        assert verified.json()["mfa_enabled"] is True


@pytest.mark.django_db
def test_the_default_issuer_is_the_host_without_its_port(
    alice_api: APIClient, pool: Pool, settings: Any
) -> None:
    settings.COGNITO_MFA_TOTP_ISSUER = None
    response = alice_api.post(BASE + "enrollments/", {}, format="json", HTTP_HOST="127.0.0.1:8000")
    assert response.status_code == 201, response.content
    uri = response.json()["otpauth_uri"]
    assert uri.startswith("otpauth://totp/127.0.0.1:alice?")
    at = _with_margin()
    by_pyotp, by_node = _readings(uri, at)
    assert by_pyotp == by_node
    assert (by_node.issuer, by_node.account) == ("127.0.0.1", "alice")
    verified = alice_api.post(
        f"{BASE}enrollments/{response.json()['id']}/verify/",
        {"user_code": by_node.code},
        format="json",
    )
    assert verified.status_code == 200, verified.content


def test_the_default_issuer_is_the_sites_name(
    monkeypatch: pytest.MonkeyPatch, rf: Any, settings: Any
) -> None:
    """With django.contrib.sites (not installed in the suite: a stand-in Site)."""
    settings.COGNITO_MFA_TOTP_ISSUER = None
    from django.contrib.sites import shortcuts
    from django.contrib.sites.requests import RequestSite

    class Site:
        name = "Praxis Dr. Ärzte"

    request = rf.get("/", HTTP_HOST="localhost:8000")
    monkeypatch.setattr(shortcuts, "get_current_site", lambda _: Site())
    assert DefaultAdapter().get_totp_issuer(request) == "Praxis Dr. Ärzte"

    def no_site(_: Any) -> Any:
        raise ObjectDoesNotExist  # no SITE_ID and no Site for this host

    monkeypatch.setattr(shortcuts, "get_current_site", no_site)
    assert DefaultAdapter().get_totp_issuer(request) == "localhost"
    # Without django.contrib.sites: a RequestSite, whose name would carry the port.
    monkeypatch.setattr(shortcuts, "get_current_site", RequestSite)
    assert DefaultAdapter().get_totp_issuer(request) == "localhost"


# --- the account name: the adapter's rule, the same in both flows -----------------------------


class SubMappingAdapter(TestAdapter):
    """A host's mapping for a pool that signs users in by e-mail, where the access token's
    ``username`` is Cognito's ``sub`` (a UUID): the site user is found by the ``sub``."""

    site_users: dict[str, Any] = {}

    def get_user_for_token(self, token: Any) -> Any:
        return SubMappingAdapter.site_users[token.sub]


@pytest.fixture
def email_pool(moto_client: Any, settings: Any) -> Pool:
    pool_id = moto_client.create_user_pool(PoolName="by-email", UsernameAttributes=["email"])[
        "UserPool"
    ]["Id"]
    moto_client.set_user_pool_mfa_config(
        UserPoolId=pool_id,
        SoftwareTokenMfaConfiguration={"Enabled": True},
        MfaConfiguration="OPTIONAL",
    )
    client_id = moto_client.create_user_pool_client(
        UserPoolId=pool_id, ClientName="spa", ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH"]
    )["UserPoolClient"]["ClientId"]
    settings.COGNITO_MFA_USER_POOL_ID = pool_id
    settings.COGNITO_MFA_APP_CLIENT_IDS = [client_id]
    settings.COGNITO_MFA_ADAPTER = "tests.unit.test_otpauth_labels.SubMappingAdapter"
    SubMappingAdapter.site_users = {}
    return Pool(moto_client, pool_id, client_id)


def _sub(pool: Pool, email: str) -> str:
    attributes = pool.client.admin_get_user(UserPoolId=pool.pool_id, Username=email)
    return next(a["Value"] for a in attributes["UserAttributes"] if a["Name"] == "sub")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("email", "username", "shown"),
    [
        ("bernd.mueller@example.org", "bernd", "bernd.mueller@example.org"),
        ("", "bernd: Praxis", "bernd\uff1a Praxis"),
    ],
    ids=["site e-mail", "site username"],
)
def test_an_email_pool_shows_the_site_account_not_the_sub(
    email_pool: Pool, email: str, username: str, shown: str
) -> None:
    email_pool.create_user("bernd.mueller@example.org", email="bernd.mueller@example.org")
    sub = _sub(email_pool, "bernd.mueller@example.org")
    SubMappingAdapter.site_users[sub] = _site_user(username, email=email)
    api = APIClient()
    api.credentials(
        HTTP_AUTHORIZATION=f"Bearer {email_pool.access_token('bernd.mueller@example.org')}"
    )
    response = api.post(BASE + "enrollments/", {}, format="json")
    assert response.status_code == 201, response.content
    assert sub not in unquote(response.json()["otpauth_uri"])
    at = _with_margin()
    by_pyotp, by_node = _readings(response.json()["otpauth_uri"], at)
    assert by_pyotp == by_node
    assert (by_pyotp.issuer, by_pyotp.account) == ("Example Site", shown)
    verified = api.post(
        f"{BASE}enrollments/{response.json()['id']}/verify/",
        {"user_code": by_pyotp.code},
        format="json",
    )
    assert verified.status_code == 200, verified.content


def test_the_label_rule_falls_back_from_e_mail_to_username_to_cognito_username() -> None:
    adapter = DefaultAdapter()
    user_model = get_user_model()
    assert adapter.get_totp_label("c-name", user_model(username="u", email="e@x.org")) == "e@x.org"
    assert adapter.get_totp_label("c-name", user_model(username="u", email="")) == "u"
    assert adapter.get_totp_label("c-name", user_model(username="", email="")) == "c-name"
    assert adapter.get_totp_label("c-name", None) == "c-name"


@pytest.mark.django_db(transaction=True)
def test_the_challenge_uri_reads_alike_and_its_code_completes_the_sign_in(
    api: APIClient, mfa_pool: Pool, settings: Any
) -> None:
    settings.COGNITO_MFA_TOTP_ISSUER = "Ärzte & Co: Berlin"
    username = "dr:who&co/ü?#"
    started = start(api, username, mfa_setup_session(mfa_pool, username)).json()
    at = _with_margin()
    by_pyotp, by_node = _readings(started["otpauth_uri"], at)
    assert by_pyotp == by_node
    # No site user is named by a claim: the label shows the Cognito username typed.
    assert (by_node.issuer, by_node.account) == ("Ärzte & Co: Berlin", "dr\uff1awho&co/ü?#")
    response = verify(api, started, by_node.code)
    assert response.status_code == 200, response.content
    assert mfa_pool.mfa_state(username)["UserMFASettingList"] == ["SOFTWARE_TOKEN_MFA"]


# --- the system check ----------------------------------------------------------------------------


def test_w002_an_issuer_with_a_colon(settings: Any) -> None:
    settings.COGNITO_MFA_TOTP_ISSUER = "Ärzte & Co: Berlin"
    (warning,) = [m for m in check_settings() if m.id == "cognito_mfa.W002"]
    assert "colon" in warning.msg
    settings.COGNITO_MFA_TOTP_ISSUER = "Ärzte & Co - Berlin"
    assert [m.id for m in check_settings()] == []
