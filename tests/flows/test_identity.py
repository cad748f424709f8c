"""Who is who: a Cognito user is bound to one site account by pool id and ``sub``.

A Cognito username can equal a local account's name (``admin``) and can be re-created for
another person; only ``sub`` names one Cognito user for good.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

import pytest
from django.contrib.auth import get_user_model

from cognito_mfa import exceptions as exc
from cognito_mfa.adapter import DefaultAdapter
from cognito_mfa.models import CognitoIdentity, Enrollment
from cognito_mfa.tokens import AccessToken, validate_access_token
from tests.support.cognito import Pool
from tests.support.enrollments import bearer_client, start_enrollment

pytestmark = pytest.mark.django_db
BASE = "/api/mfa/"


def _start(pool: Pool, username: str) -> tuple[Any, Enrollment]:
    body = start_enrollment(bearer_client(pool.access_token(username)))
    return body, Enrollment.objects.get(pk=body["id"])


def test_a_pool_user_named_like_the_superuser_gets_an_account_of_its_own(pool: Pool) -> None:
    admin = get_user_model().objects.create_superuser("admin", "root@example.com", "x")
    pool.create_user("admin", email="someone@example.com")

    body, enrollment = _start(pool, "admin")

    assert enrollment.user is not None
    assert enrollment.user.pk != admin.pk
    assert not enrollment.user.is_staff
    assert not enrollment.user.is_superuser
    assert "root@example.com" not in unquote(body["otpauth_uri"])
    identity = CognitoIdentity.objects.get()
    assert identity.user_id == enrollment.user.pk
    assert identity.pool_id == pool.pool_id
    assert identity.cognito_username == "admin"
    # Named by its sub, since "admin" is taken, and it stays that account.
    assert enrollment.user.get_username() == identity.sub
    _, again = _start(pool, "admin")
    assert again.user_id == enrollment.user.pk


def test_a_staff_account_is_not_adopted_either(pool: Pool) -> None:
    staff = get_user_model().objects.create_user("helpdesk", is_staff=True)
    pool.create_user("helpdesk")
    _, enrollment = _start(pool, "helpdesk")
    assert enrollment.user_id != staff.pk


def test_an_unbound_plain_account_is_adopted_once_by_sub(pool: Pool) -> None:
    local = get_user_model().objects.create_user("carol", email="carol@example.com")
    pool.create_user("carol")
    _, enrollment = _start(pool, "carol")
    assert enrollment.user_id == local.pk
    assert CognitoIdentity.objects.get().user_id == local.pk


def test_adoption_can_be_turned_off(pool: Pool, settings: Any) -> None:
    settings.COGNITO_MFA_ADOPT_EXISTING_USERS = False
    local = get_user_model().objects.create_user("carol")
    pool.create_user("carol")
    _, enrollment = _start(pool, "carol")
    assert enrollment.user_id != local.pk


def test_a_re_created_cognito_username_does_not_inherit_the_previous_person(pool: Pool) -> None:
    pool.create_user("dave")
    _, first = _start(pool, "dave")
    pool.client.admin_delete_user(UserPoolId=pool.pool_id, Username="dave")
    pool.create_user("dave")  # another person, another sub

    newcomer = bearer_client(pool.access_token("dave"))
    listed = newcomer.get(BASE + "enrollments/").json()
    assert listed == []
    cancel = newcomer.delete(f"{BASE}enrollments/{first.pk}/")
    assert cancel.status_code == 404
    assert CognitoIdentity.objects.count() == 2
    assert len(set(CognitoIdentity.objects.values_list("user_id", flat=True))) == 2


def test_a_deactivated_bound_account_is_refused_like_drf_refuses_it(pool: Pool) -> None:
    pool.create_user("erin")
    _, enrollment = _start(pool, "erin")
    user = enrollment.user
    assert user is not None
    user.is_active = False
    user.save()

    response = bearer_client(pool.access_token("erin")).get(BASE + "enrollments/")
    assert response.status_code == 401
    assert response.json()["code"] == "account_unavailable"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_deactivated_same_named_account_is_neither_adopted_nor_doubled(pool: Pool) -> None:
    get_user_model().objects.create_user("frank", is_active=False)
    pool.create_user("frank")
    response = bearer_client(pool.access_token("frank")).get(BASE + "enrollments/")
    assert response.status_code == 401
    assert response.json()["code"] == "account_unavailable"
    assert get_user_model().objects.count() == 1
    assert not CognitoIdentity.objects.exists()


def _token(username: str, sub: str = "0f1e2d3c-0000-4000-8000-00000000abcd") -> AccessToken:
    return AccessToken(
        raw="",
        username=username,
        sub=sub,
        client_id="client",
        expires_at=datetime.now(UTC) + timedelta(hours=1),
        auth_time=None,
        claims={},
    )


def test_a_username_the_user_model_refuses_is_not_created() -> None:
    with pytest.raises(exc.AccountUnavailable):
        DefaultAdapter().get_user_for_token(_token("no spaces/or slashes!"))
    with pytest.raises(exc.AccountUnavailable):
        DefaultAdapter().get_user_for_token(_token("x" * 151))
    assert not get_user_model().objects.exists()
    assert not CognitoIdentity.objects.exists()


def test_a_token_without_sub_binds_nobody() -> None:
    with pytest.raises(exc.TokenInvalid):
        DefaultAdapter().get_user_for_token(_token("gina", sub=""))


def test_the_host_header_needs_the_bound_account(pool: Pool) -> None:
    from django.test import Client

    pool.create_user("hank")
    _start(pool, "hank")  # binds the Cognito user "hank" to the account "hank"
    pool.client.admin_delete_user(UserPoolId=pool.pool_id, Username="hank")
    pool.create_user("hank")  # someone else now
    site_user = get_user_model().objects.get(username="hank")
    client = Client()
    client.force_login(site_user)
    token = pool.access_token("hank")
    assert validate_access_token(token).username == "hank"
    response = client.get(BASE + "enrollments/", HTTP_X_COGNITO_ACCESS_TOKEN=token)
    assert response.status_code == 401
    assert response.json()["code"] == "token_invalid"
